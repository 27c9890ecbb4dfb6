// A D-Bus client from the wire up, in Python (no python3-dbus needed), for the fault suite's
// malformed traffic (FaultDBusTests): messages with signatures that do not match the method,
// 1 MiB arguments, object paths past what libsystemd accepts, unknown services, members and
// objects, thousands pipelined on one connection — what busctl and dbus-send cannot send, or
// not fast enough (one process per call).
let faultDBusClient = #"""
#!/usr/bin/env python3
"""A D-Bus client from the wire up, for malformed traffic (no python3-dbus needed).

    python3 dbusburst.py SPEC.json
    python3 dbusburst.py --probe DESTINATION PATH INTERFACE PROPERTY [INTERVAL]

SPEC.json: {"destination": NAME, "calls": [CALL, ...], "repeat": N, "window": MAX_IN_FLIGHT,
            "probe": {"path": P, "interface": I, "property": NAME} | null, "timeout": S}
CALL: {"kind": K, "path": P, "interface": I, "member": M, "signature": S, "args": [...],
       "expect": [ERROR_NAME, ...]}   ("expect": [] — nobody should answer it)
Every call goes out `repeat` times over one connection, pipelined (at most `window` waiting
for their answer), while a second connection asks `probe` (Properties.Get) every 50 ms and
times each answer. Prints one JSON object: the answers counted by kind and error name, the
answers that were not one of the expected errors, and the probe's latencies (ms).
"""
import json
import os
import select
import socket
import struct
import sys
import threading
import time


def pad(n, a):
    return (a - n % a) % a


class Writer:
    """Marshals D-Bus values, little endian, for the signatures this tool needs."""

    def __init__(self, offset=0):
        self.buf = bytearray()
        self.offset = offset  # alignment is relative to the message start

    def align(self, a):
        self.buf += b"\0" * pad(self.offset + len(self.buf), a)

    def put(self, sig, value):
        if sig == "y":
            self.buf += struct.pack("<B", value)
        elif sig == "b":
            self.align(4); self.buf += struct.pack("<I", 1 if value else 0)
        elif sig == "u":
            self.align(4); self.buf += struct.pack("<I", value)
        elif sig == "i":
            self.align(4); self.buf += struct.pack("<i", value)
        elif sig == "t":
            self.align(8); self.buf += struct.pack("<Q", value)
        elif sig in ("s", "o"):
            data = value.encode() if isinstance(value, str) else value
            self.align(4); self.buf += struct.pack("<I", len(data)) + data + b"\0"
        elif sig == "g":
            data = value.encode()
            self.buf += struct.pack("<B", len(data)) + data + b"\0"
        elif sig == "as":
            self.align(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.align(4)
            start = len(self.buf)
            for item in value:
                self.put("s", item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif sig.startswith("v"):  # "v:s" → a variant holding an s
            inner = sig[2:]
            self.put("g", inner)
            self.put(inner, value)
        else:
            raise ValueError("unsupported signature " + sig)


def split_signature(sig):
    """'sas' → ['s', 'as'] (only what `put` supports)."""
    out, i = [], 0
    while i < len(sig):
        if sig[i] == "a":
            out.append(sig[i:i + 2]); i += 2
        else:
            out.append(sig[i]); i += 1
    return out


def message(serial, path, interface, member, destination, signature, args, flags=0):
    body = Writer()
    sig_parts = split_signature(signature) if signature else []
    for s, a in zip(sig_parts, args):
        if s == "v":
            body.put(a["sig"], a["value"])  # {"sig": "v:s", "value": ...}
        else:
            body.put(s, a)
    fields = Writer(offset=16)
    def field(code, sig, value):
        fields.align(8)
        fields.put("y", code)
        fields.put("g", sig)
        fields.put(sig, value)
    field(1, "o", path)
    if interface:
        field(2, "s", interface)
    field(3, "s", member)
    if destination:
        field(6, "s", destination)
    if signature:
        field(8, "g", signature)
    header = struct.pack("<cBBBII", b"l", 1, flags, 1, len(body.buf), serial)
    out = bytearray(header) + struct.pack("<I", len(fields.buf)) + fields.buf
    out += b"\0" * pad(len(out), 8)
    return bytes(out + body.buf)


class Connection:
    def __init__(self, address):
        path = None
        for part in address.split(";"):
            if part.startswith("unix:"):
                kv = dict(x.split("=", 1) for x in part[5:].split(","))
                path = kv.get("path") or ("\0" + kv["abstract"] if "abstract" in kv else None)
                if path:
                    break
        if not path:
            raise SystemExit("dbusburst: no unix path in " + address)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise SystemExit("dbusburst: auth refused: %r" % line)
        self.sock.sendall(b"BEGIN\r\n")
        self.rbuf = bytearray()
        self.serial = 0
        self.send_lock = threading.Lock()
        self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "org.freedesktop.DBus", "", [])
        while True:
            m = self.read()
            if m["type"] in (2, 3):
                break

    def _line(self):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise SystemExit("dbusburst: bus closed during auth")
            data += chunk
        return data

    def call(self, path, interface, member, destination, signature, args):
        with self.send_lock:
            self.serial += 1
            serial = self.serial
            self.sock.sendall(message(serial, path, interface, member, destination, signature, args))
        return serial

    def read(self, timeout=None):
        """The next message: type, reply serial, error name, first string of the body.
        With `timeout`, socket.timeout if none is complete after that many seconds."""
        while True:
            if len(self.rbuf) >= 16:
                body_len, = struct.unpack_from("<I", self.rbuf, 4)
                fields_len, = struct.unpack_from("<I", self.rbuf, 12)
                header_len = 16 + fields_len + pad(16 + fields_len, 8)
                total = header_len + body_len
                if len(self.rbuf) >= total:
                    raw = bytes(self.rbuf[:total])
                    del self.rbuf[:total]
                    return parse(raw, fields_len, header_len)
            if timeout is not None and not select.select([self.sock], [], [], timeout)[0]:
                raise socket.timeout()
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the bus closed the connection")
            self.rbuf += chunk


def parse(raw, fields_len, header_len):
    mtype = raw[1]
    out = {"type": mtype, "reply_serial": None, "error": None, "text": ""}
    i, end = 16, 16 + fields_len
    while i < end:
        i += pad(i, 8)
        code = raw[i]; i += 1
        siglen = raw[i]; sig = raw[i + 1:i + 1 + siglen].decode(); i += 2 + siglen
        if sig in ("s", "o"):
            i += pad(i, 4)
            n, = struct.unpack_from("<I", raw, i); i += 4
            value = raw[i:i + n].decode("utf-8", "replace"); i += n + 1
        elif sig == "g":
            n = raw[i]; value = raw[i + 1:i + 1 + n].decode(); i += 2 + n
        elif sig == "u":
            i += pad(i, 4)
            value, = struct.unpack_from("<I", raw, i); i += 4
        else:
            raise ValueError("header field signature " + sig)
        if code == 5:
            out["reply_serial"] = value
        elif code == 4:
            out["error"] = value
    if mtype == 3 and len(raw) >= header_len + 4:
        n, = struct.unpack_from("<I", raw, header_len)
        out["text"] = raw[header_len + 4:header_len + 4 + min(n, 300)].decode("utf-8", "replace")
    return out


def probe_only(destination, path, interface, prop, interval):
    """One connection, Properties.Get every `interval` s until SIGTERM or stdin closes: one line
    per call, "UNIX_TIME LATENCY_MS OK|ERROR" (the daemon's answer time, without the cost of
    starting a client process that `busctl` adds to each call)."""
    conn = Connection(os.environ["DBUS_SESSION_BUS_ADDRESS"])
    while True:
        at = time.time()
        started = time.monotonic()
        serial = conn.call(path, "org.freedesktop.DBus.Properties", "Get", destination, "ss", [interface, prop])
        while True:
            m = conn.read()
            if m["reply_serial"] == serial:
                break
        print("%.6f %.3f %s" % (at, (time.monotonic() - started) * 1000, "OK" if m["type"] == 2 else "ERROR"),
              flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def main():
    if sys.argv[1] == "--probe":
        a = sys.argv[2:]
        probe_only(a[0], a[1], a[2], a[3], float(a[4]) if len(a) > 4 else 0.05)
        return
    spec = json.load(open(sys.argv[1]))
    address = os.environ["DBUS_SESSION_BUS_ADDRESS"]
    destination = spec["destination"]
    calls, repeat, window = spec["calls"], spec.get("repeat", 1), spec.get("window", 2000)

    latencies, probe_errors = [], []
    stop = threading.Event()

    def probe():
        p = spec.get("probe")
        if not p:
            return
        conn = Connection(address)
        while not stop.is_set():
            started = time.monotonic()
            serial = conn.call(p["path"], "org.freedesktop.DBus.Properties", "Get", destination, "ss",
                               [p["interface"], p["property"]])
            while True:
                m = conn.read()
                if m["reply_serial"] == serial:
                    break
            latencies.append((time.monotonic() - started) * 1000)
            if m["type"] != 2:
                probe_errors.append(m["error"])
            stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()

    conn = Connection(address)
    pending = {}  # serial → call index
    sent = 0
    slots = threading.Semaphore(window)
    total = len(calls) * repeat
    started = time.monotonic()

    unanswerable = {}  # serial → call index, for calls nobody should answer ("expect": [])
    waited = sum(1 for c in calls if c["expect"]) * repeat

    def send_all():
        nonlocal sent
        for r in range(repeat):
            for index, c in enumerate(calls):
                if c["expect"]:
                    slots.acquire()
                with conn.send_lock:
                    conn.serial += 1
                    serial = conn.serial
                    (pending if c["expect"] else unanswerable)[serial] = index
                    conn.sock.sendall(message(serial, c["path"], c.get("interface"), c["member"], destination,
                                              c.get("signature", ""), c.get("args", [])))
                sent += 1

    sender_errors = []

    def send_or_note():
        try:
            send_all()
        except Exception as e:  # reported, not swallowed: a client that stopped sending
            sender_errors.append(repr(e))
            stop.set()

    sender = threading.Thread(target=send_or_note, daemon=True)
    sender.start()
    answered, counts, unexpected = 0, {}, []
    deadline = started + spec.get("timeout", 120)
    done_at = None  # once every expected answer is in: 1 s more for answers nobody should send
    while time.monotonic() < deadline and not sender_errors:
        if answered >= waited and sent >= total:
            done_at = done_at or time.monotonic()
            if time.monotonic() > done_at + 1:
                break
        try:
            m = conn.read(timeout=0.2)
        except socket.timeout:
            continue
        if m["type"] not in (2, 3):
            continue
        if m["reply_serial"] in pending:
            index = pending.pop(m["reply_serial"])
            slots.release()
            answered += 1
        elif m["reply_serial"] in unanswerable:
            index = unanswerable.pop(m["reply_serial"])
        else:
            continue
        c = calls[index]
        name = m["error"] if m["type"] == 3 else "(method return)"
        key = c["kind"] + " -> " + name
        counts[key] = counts.get(key, 0) + 1
        if name not in c["expect"] and len(unexpected) < 20:
            unexpected.append({"kind": c["kind"], "member": c["member"], "got": name, "text": m["text"]})
    elapsed = (done_at or time.monotonic()) - started
    stop.set()
    prober.join(timeout=5)
    latencies.sort()
    print(json.dumps({
        "sent": sent, "expected_answers": waited, "answered": answered, "seconds": round(elapsed, 3),
        "unanswered_as_expected": len(unanswerable), "counts": counts,
        "unexpected": unexpected, "sender_errors": sender_errors,
        "probe": {"count": len(latencies), "errors": probe_errors[:5],
                  "median_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
                  "max_ms": round(latencies[-1], 2) if latencies else None},
    }))


if __name__ == "__main__":
    main()
"""#
