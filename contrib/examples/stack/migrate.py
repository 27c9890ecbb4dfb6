#!/usr/bin/env python3
"""The example stack's migration (a oneshot task): brings the SQLite database in $DATA_DIR
up to $SCHEMA_VERSION and exits 0; web and worker wait for that. Idempotent: run again, it
does nothing more. Only the standard library."""

import os
import sqlite3
import sys

MIGRATIONS = {
    1: "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, created REAL NOT NULL, done_by TEXT)",
    2: "CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (done_by)",
}


def main():
    data = os.environ.get("DATA_DIR", "data")
    target = int(os.environ.get("SCHEMA_VERSION", "2"))
    if target not in MIGRATIONS:
        sys.exit(f"migrate: no migration to schema version {target}")
    os.makedirs(data, exist_ok=True)
    db = sqlite3.connect(os.path.join(data, "app.db"))
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for step in range(version + 1, target + 1):
        db.execute(MIGRATIONS[step])
        db.execute(f"PRAGMA user_version = {step}")
        db.commit()
        print(f"migrate: applied migration {step}")
    print(f"migrate: schema at version {max(version, target)}")


if __name__ == "__main__":
    main()
