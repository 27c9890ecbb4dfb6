#!/usr/bin/env python3
"""The web tier's pre-start: refuses to start (exit 1, reason "pre-start") while the database
in $DATA_DIR is not at $SCHEMA_VERSION. Only the standard library."""

import os
import sqlite3
import sys


def main():
    path = os.path.join(os.environ.get("DATA_DIR", "data"), "app.db")
    want = int(os.environ.get("SCHEMA_VERSION", "2"))
    if not os.path.exists(path):
        sys.exit(f"check_schema: {path} does not exist: has migrate run?")
    have = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    if have < want:
        sys.exit(f"check_schema: {path} is at schema version {have}, web needs {want}")


if __name__ == "__main__":
    main()
