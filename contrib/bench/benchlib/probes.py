"""The probes workload: 100 HTTP servers, each checked once a second — by Ringmaster's own
liveness probes (`interval = "1s"`), then by Monit (Debian's `monit`, `set daemon 1`, one
`check host` per URL) — and the checker's own CPU over the same window. Ringmaster only among
the supervisor peers (Monit is the comparison here, not a peer of the other workloads).

  1. ringmasterd with 100 instances of server.py, each with an HTTP liveness probe of its
     own port: the daemon's CPU, wake-ups, and the requests the servers counted (≈ 100/s,
     proof that every URL was checked every second).
  2. The same 100 instances without a probe: the daemon's CPU and wake-ups (a service
     without probes must add no wake-up: only the unit's watchdog pings remain).
  3. With those servers still up, Monit checking the same 100 URLs: Monit's CPU, wake-ups and
     the requests counted.
"""

import os
import signal
import socket
import subprocess
import time

from . import procfs
from .peers import Svc, write

N = 100
SERVER = r'''
# A keep-alive HTTP/1.1 server, one thread per connection, as real app servers keep
# connections (gunicorn gthread, uvicorn, node, Go): a client may send the next request on the
# same connection; one that asks `Connection: close` (Monit) gets it closed. It counts the
# connections it accepted and the requests it answered: "requests connections" in hits.PORT.
import http.server, os, sys, threading
port = int(sys.argv[1])
lock = threading.Lock()
counts = [0, 0]
def save():
    with open("hits.%d.tmp" % port, "w") as f:
        f.write("%d %d" % (counts[1], counts[0]))
    os.replace("hits.%d.tmp" % port, "hits.%d" % port)
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        with lock:
            counts[0] += 1
    def do_GET(self):
        # the response in one write, as before (http.server's send_response/end_headers and a
        # separate body write would make two segments)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                         + (b"Connection: close\r\n" if self.close_connection else b"") + b"\r\nok")
        with lock:
            counts[1] += 1
            save()
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
Server(("127.0.0.1", port), Handler).serve_forever()
'''


def free_base(n):
    """A base port with n free loopback ports after it."""
    for base in range(31000, 60000, 500):
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError(f"no {n} free ports in a row")


def wait_listening(base, n, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    for p in range(base, base + n):
        while True:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {p} not listening within {timeout_s} s")
                time.sleep(0.05)


def hits(wd, base, n):
    """(requests, connections) the servers counted."""
    requests = connections = 0
    for p in range(base, base + n):
        try:
            r, c = open(os.path.join(wd, f"hits.{p}")).read().split()
            requests += int(r)
            connections += int(c)
        except (OSError, ValueError):
            pass
    return requests, connections


def measure(pids_fn, window_s, wd, base):
    """wd: where the servers write their counts (ringmaster's working directory for them)."""
    pids = pids_fn()
    a, h0, t0 = procfs.cpu_sample(pids), hits(wd, base, N), time.monotonic()
    time.sleep(window_s)
    b, h1, t1 = procfs.cpu_sample(pids_fn()), hits(wd, base, N), time.monotonic()
    w = t1 - t0
    return {"cpu_ms_per_s": (b["ns"] - a["ns"]) / 1e6 / w, "wakeups_per_s": (b["voluntary"] - a["voluntary"]) / w,
            "requests_per_s": (h1[0] - h0[0]) / w, "connections_per_s": (h1[1] - h0[1]) / w, "window_s": w}


def monitrc(wd, base):
    lines = ["set daemon 1", f"set log {wd}/monit.log", f"set idfile {wd}/monit.id",
             f"set statefile {wd}/monit.state", f"set pidfile {wd}/monit.pid", ""]
    for i in range(N):
        lines += [f"check host web{i} with address 127.0.0.1",
                  f'    if failed port {base + i} protocol http request "/healthz" with timeout 1 seconds then alert', ""]
    path = os.path.join(wd, "monitrc")
    write(path, "\n".join(lines), mode=0o600)
    return path


def probes(ctx, peer, wd, tag):
    if peer.key != "ringmaster":
        return None
    os.makedirs(wd, exist_ok=True)
    server = os.path.join(wd, "server.py")
    write(server, SERVER)
    base = free_base(N)
    window = 10.0 if ctx.quick else 20.0
    marker = f"/usr/bin/python3\x00{server}\x00".encode()
    argv = ["/usr/bin/python3", server, "{instance + %d}" % base]
    probe = ('[services.web.liveness]\nhttp = "http://127.0.0.1:{instance + %d}/healthz"\n'
             'interval = "1s"\n' % base)
    res = {"instances": N, "interval_s": 1}

    # 1. Ringmaster's probes
    cwd = os.path.join(wd, "with-probes")
    peer.configure(cwd, tag + "p", [Svc("web", argv, N, extra_toml=probe)])
    peer.launch()
    try:
        wait_listening(base, N)
        time.sleep(3)
        res["ringmaster"] = measure(lambda: peer.own_pids([marker]), window, cwd, base)
    finally:
        peer.stop()

    # 2. and 3. No probes in Ringmaster; Monit checks the same servers.
    cwd = os.path.join(wd, "no-probes")
    peer.configure(cwd, tag + "n", [Svc("web", argv, N)])
    peer.launch()
    monit = None
    try:
        wait_listening(base, N)
        time.sleep(3)
        res["ringmaster_no_probes"] = measure(lambda: peer.own_pids([marker]), window, cwd, base)
        rc = monitrc(wd, base)
        monit = subprocess.Popen(["monit", "-I", "-c", rc], stdin=subprocess.DEVNULL,
                                 stdout=open(os.path.join(wd, "monit.out"), "wb"), stderr=subprocess.STDOUT,
                                 cwd=wd, start_new_session=True)
        time.sleep(3)
        if monit.poll() is not None:
            raise RuntimeError(f"monit exited ({monit.returncode}): see {wd}/monit.out")
        res["monit"] = measure(lambda: procfs.descendants(monit.pid), window, cwd, base)
        # Monit got its answers: no check failed (it logs each failure, and each recovery)
        try:
            res["monit_failed_checks"] = sum("failed" in line for line in open(os.path.join(wd, "monit.log")))
        except OSError:
            res["monit_failed_checks"] = None
        res["monit_version"] = subprocess.run(["monit", "-V"], stdout=subprocess.PIPE,
                                              text=True).stdout.splitlines()[0].replace("This is Monit version", "Monit")
    finally:
        if monit:
            monit.send_signal(signal.SIGTERM)
            try:
                monit.wait(timeout=20)
            except subprocess.TimeoutExpired:
                monit.kill()
                monit.wait()
        peer.stop()
    res["ratio"] = res["ringmaster"]["cpu_ms_per_s"] / res["monit"]["cpu_ms_per_s"] if res["monit"]["cpu_ms_per_s"] else None
    return res


def brief(r):
    rm, mo, np = r["ringmaster"], r["monit"], r["ringmaster_no_probes"]
    return (f"ringmasterd {rm['cpu_ms_per_s']:.2f} ms CPU/s ({rm['requests_per_s']:.0f} req/s on {rm.get('connections_per_s', 0):.0f} connections/s,"
            f" {rm['wakeups_per_s']:.0f} wake-ups/s); "
            f"monit {mo['cpu_ms_per_s']:.2f} ms/s ({mo['requests_per_s']:.0f} req/s on {mo.get('connections_per_s', 0):.0f} connections/s,"
            f" {mo['wakeups_per_s']:.0f} wake-ups/s, {r.get('monit_failed_checks')} failed checks); "
            f"ratio {r['ratio']:.3f}; without probes {np['cpu_ms_per_s']:.3f} ms/s, {np['wakeups_per_s']:.2f} wake-ups/s")


def render(runs):
    """The report's section from the repetitions' results (medians)."""
    runs = [r for r in runs if r]
    if not runs:
        return []

    def med(f):
        v = sorted(f(r) for r in runs)
        return v[len(v) // 2]
    lines = ["### Probes beside Monit", "",
             f"{N} instances of a small keep-alive Python HTTP/1.1 server (`ThreadingHTTPServer`), each URL checked once a second: by Ringmaster's"
             " HTTP liveness probes (`interval = \"1s\"`), then by Monit"
             f" ({runs[0].get('monit_version', 'monit').replace('This is Monit version', 'Monit')}, `set daemon 1`, one `check host … protocol http` per URL)."
             " CPU of the checker's own processes (never the servers'), median of the repetitions;"
             " requests and connections counted by the servers themselves.", "",
             "| checker | CPU ms per s | CPU µs per check | wake-ups per s | requests per s | connections per s |",
             "|---|---|---|---|---|---|"]

    def per_check(r, key):
        return r[key]["cpu_ms_per_s"] * 1000 / r[key]["requests_per_s"] if r[key]["requests_per_s"] else 0
    for label, key in (("ringmasterd, 100 liveness probes", "ringmaster"), ("Monit, 100 checks", "monit"),
                       ("ringmasterd, the same 100 instances without probes", "ringmaster_no_probes")):
        checks = f"{med(lambda r: per_check(r, key)):.0f}" if key != "ringmaster_no_probes" else "—"
        lines.append(f"| {label} | {med(lambda r: r[key]['cpu_ms_per_s']):.2f} | {checks} | {med(lambda r: r[key]['wakeups_per_s']):.1f} |"
                     f" {med(lambda r: r[key]['requests_per_s']):.0f} | {med(lambda r: r[key].get('connections_per_s', 0)):.0f} |")
    ratio = med(lambda r: r["ratio"] or 0)
    per = med(lambda r: per_check(r, "ringmaster") / per_check(r, "monit") if per_check(r, "monit") else 0)
    lines += ["", f"Ringmaster ÷ Monit CPU: **{ratio:.3f}** per second, {per:.3f} per check"
              f" (goal ≤ 0.25: {'met' if ratio <= 0.25 else 'missed'}).", ""]
    return lines
