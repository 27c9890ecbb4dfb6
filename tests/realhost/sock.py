#!/usr/bin/env python3
"""Socket and process probes for the real-host suite (run inside the VM, often as mallory).

Each subcommand prints one line saying what happened and exits 0 when the operation
succeeded, 1 when the kernel refused it (the line names the errno), 2 on bad usage.

  connect-unix PATH                 connect() to a unix stream socket
  send-dgram ADDR MESSAGE           one datagram to a unix datagram socket ('@x': abstract)
  send-dgram-stay ADDR MESSAGE S    the same, then stay alive S seconds (a notify sender must
                                    still exist when ringmasterd checks who it is)
  bind-dgram ADDR                   bind() a unix datagram socket to ADDR
  bind-tcp-reuseport HOST PORT      bind() a TCP socket with SO_REUSEPORT, then listen()
  pidfd-getfd PID FD                pidfd_open(PID) + pidfd_getfd(FD): take another process's fd
  open PATH                         open() a file for reading and read one byte
  http PORT PATH                    GET http://127.0.0.1:PORT/PATH, print the body
  squat ADDR SECONDS                keep trying to bind ADDR (unix datagram) for SECONDS; once
                                    bound, collect every datagram sent to it; prints a summary
                                    "bound=yes|no datagrams=N [first=...]", exits 0
"""

import ctypes
import errno
import os
import socket
import sys
import time


def unix_address(addr):
    return "\0" + addr[1:] if addr.startswith("@") else addr


def refused(what, e):
    code = errno.errorcode.get(e.errno, str(e.errno))
    print(f"refused: {what}: {code} ({os.strerror(e.errno)})")
    return 1


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "connect-unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(args[0])
            print(f"connected to {args[0]}")
            return 0
        if cmd in ("send-dgram", "send-dgram-stay"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(args[1].encode(), unix_address(args[0]))
            print(f"sent {len(args[1])} bytes to {args[0]}", flush=True)
            if cmd == "send-dgram-stay":
                time.sleep(float(args[2]))
            return 0
        if cmd == "bind-dgram":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(unix_address(args[0]))
            print(f"bound {args[0]}")
            return 0
        if cmd == "bind-tcp-reuseport":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((args[0], int(args[1])))
            s.listen(1)
            print(f"bound and listening on {args[0]}:{args[1]}")
            return 0
        if cmd == "pidfd-getfd":
            libc = ctypes.CDLL(None, use_errno=True)
            pidfd = os.pidfd_open(int(args[0]))
            fd = libc.syscall(438, pidfd, int(args[1]), 0)  # SYS_pidfd_getfd
            if fd < 0:
                e = ctypes.get_errno()
                return refused("pidfd_getfd", OSError(e, os.strerror(e)))
            print(f"took fd {args[1]} of pid {args[0]} as fd {fd}")
            return 0
        if cmd == "open":
            with open(args[0], "rb") as f:
                f.read(1)
            print(f"opened and read {args[0]}")
            return 0
        if cmd == "http":
            s = socket.create_connection(("127.0.0.1", int(args[0])), timeout=10)
            s.sendall(f"GET /{args[1]} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0].decode(errors="replace")
            print(f"{status} | {body.decode(errors='replace').strip()}")
            return 0 if b" 200 " in head.split(b"\r\n", 1)[0] + b" " else 1
        if cmd == "squat":
            addr, seconds = args[0], float(args[1])
            deadline = time.monotonic() + seconds
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            bound = False
            while time.monotonic() < deadline and not bound:
                try:
                    s.bind(unix_address(addr))
                    bound = True
                except OSError:
                    time.sleep(0.005)
            got = []
            while bound and time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    got.append(s.recv(4096).decode(errors="replace"))
                except socket.timeout:
                    break
            first = f" first={got[0]!r}" if got else ""
            print(f"bound={'yes' if bound else 'no'} datagrams={len(got)}{first}")
            return 0
    except IndexError:
        print(__doc__, file=sys.stderr)
        return 2
    except OSError as e:
        return refused(cmd, e)
    print(f"unknown subcommand {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
