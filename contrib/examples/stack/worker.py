#!/usr/bin/env python3
"""The example stack's background worker: every $JOB_INTERVAL seconds it queues a job in the
SQLite database in $DATA_DIR and takes one pending job as $WORKER_NAME. It answers
GET /healthz on 127.0.0.1:$PORT (a port per instance: PORT = "{instance + 8100}") and sends
READY=1 once that port is bound. Only the standard library."""

import http.server
import os
import signal
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from httpworker import notify  # noqa: E402  (sd_notify, from the first example)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/healthz"
        body = f"{os.environ.get('WORKER_NAME', 'worker')} ok\n" if ok else "not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def main():
    name = os.environ.get("WORKER_NAME", "worker")
    port = int(os.environ.get("PORT", "8100"))
    interval = float(os.environ.get("JOB_INTERVAL", "2"))
    db = sqlite3.connect(os.path.join(os.environ.get("DATA_DIR", "data"), "app.db"))
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{name}: health on http://127.0.0.1:{port}/healthz")
    notify("READY=1\nSTATUS=working")
    while True:
        with db:
            db.execute("INSERT INTO jobs (created) VALUES (?)", (time.time(),))
            row = db.execute("SELECT id FROM jobs WHERE done_by IS NULL ORDER BY id LIMIT 1").fetchone()
            if row:
                db.execute("UPDATE jobs SET done_by = ? WHERE id = ? AND done_by IS NULL", (name, row[0]))
                print(f"{name}: did job {row[0]}")
        time.sleep(interval)


if __name__ == "__main__":
    main()
