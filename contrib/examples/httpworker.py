#!/usr/bin/env python3
"""A tiny HTTP worker for Ringmaster's demo and tests.

It serves on the listening socket it inherits as fd 3 (socket activation, as systemd or
ringmasterd pass it: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID), so several instances can
share one port: the kernel hands each new connection to one of the instances waiting in
accept(). Each reply names the process that served it:

    pid=12345 instance=2 service=web

When NOTIFY_SOCKET is set it reports readiness itself (READY=1 over a unix datagram
socket, an address starting with '@' being in the abstract namespace), once it is really
accepting. It logs one line per request to stdout, flushed, so the line reaches the
journal (or ringmasterd's console) at once.

Only the standard library; runs with any python3 >= 3.7.
"""

import http.server
import os
import signal
import socket
import sys

SD_LISTEN_FDS_START = 3


def inherited_socket():
    """The first socket passed by socket activation, or exit with a clear message."""
    listen_pid = os.environ.get("LISTEN_PID")
    if listen_pid is not None and listen_pid != str(os.getpid()):
        sys.exit(f"httpworker: LISTEN_PID={listen_pid} is not this process ({os.getpid()}): "
                 "the sockets were meant for another process")
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        count = 0
    if count < 1:
        sys.exit("httpworker: no socket passed (LISTEN_FDS is not set): "
                 "run me under ringmasterd or systemd with a listening socket")
    # Like sd_listen_fds(unset_environment=1): these are ours, not our children's.
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(SD_LISTEN_FDS_START, False)
    # Every instance's select() wakes for each new connection but only one accept() wins:
    # a blocking accept() would leave the others stuck in it, deaf to SIGTERM.
    sock.setblocking(False)
    return sock, (names[0] if names and names[0] else "unknown")


def notify(message):
    """sd_notify(): one datagram to $NOTIFY_SOCKET; a no-op when it is not set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(address)
        s.sendall(message.encode())


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "httpworker/1"
    protocol_version = "HTTP/1.0"   # one request per connection: spreads them over instances

    def do_GET(self):
        body = "pid={} instance={} service={}\n".format(
            os.getpid(),
            os.environ.get("RINGMASTER_INSTANCE", "-"),
            os.environ.get("RINGMASTER_SERVICE", "-"),
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # One line per request on stdout (not stderr, as the base class does), flushed now.
        print("{} {}".format(self.client_address[0], fmt % args), flush=True)


class Server(http.server.HTTPServer):
    def __init__(self, sock):
        # Bind nothing: adopt the inherited, already listening socket.
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock


def main():
    sock, name = inherited_socket()
    server = Server(sock)
    # SIGTERM (the default stop-signal): finish the request in hand, accept no more, exit.
    # (server.shutdown() from a signal handler would deadlock serve_forever(); stopping the
    # loop through its own flag lets the current request complete first.)
    def stop(*_):
        server._BaseServer__shutdown_request = True
    signal.signal(signal.SIGTERM, stop)
    print("httpworker pid={} instance={} serving socket \"{}\" on {}".format(
        os.getpid(), os.environ.get("RINGMASTER_INSTANCE", "-"), name, sock.getsockname()),
        flush=True)
    notify("READY=1\nSTATUS=accepting connections")
    server.serve_forever(poll_interval=0.1)
    notify("STOPPING=1")
    print("httpworker pid={} stopping".format(os.getpid()), flush=True)


if __name__ == "__main__":
    main()
