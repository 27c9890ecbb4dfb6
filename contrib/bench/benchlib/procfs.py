"""The measuring code, the same for every supervisor: /proc readers and the exec watcher.

Everything here reads the kernel's own accounting; nothing asks a supervisor about itself.

- memory: Rss and Pss from /proc/PID/smaps_rollup, summed over a set of processes;
- CPU: sum_exec_runtime (ns) from /proc/PID/task/*/schedstat, plus utime+stime (ticks)
  from /proc/PID/stat, summed;
- wake-ups: voluntary context switches of every thread (/proc/PID/task/*/status): a thread
  that wakes up and goes back to sleep blocks once; preemptions are counted apart;
- exec times: the kernel's process-events connector (netlink, CN_IDX_PROC) reports every
  exec(2) on the machine with a CLOCK_MONOTONIC timestamp taken in the kernel, so "the child
  has exec'd" is timed to the microsecond without polling. The watcher reads
  /proc/PID/cmdline when the event arrives and keeps the processes whose argv is one the
  benchmark registered (e.g. `/bin/sleep 987620`). Where the connector is missing (no
  CONFIG_PROC_EVENTS, not in the initial network namespace) it falls back to scanning /proc
  every millisecond (`ProcScanWatcher`), which times to the scan period.
"""

import errno
import os
import socket
import struct
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def mono_ns():
    return time.monotonic_ns()


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def cmdline(pid):
    return read_bytes(f"/proc/{pid}/cmdline")


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    raw = read_bytes(f"/proc/{pid}/stat")
    if raw is None:
        return None
    return raw[raw.rindex(b")") + 2:].split()


def ppid_map():
    m = {}
    for pid in all_pids():
        f = stat_fields(pid)
        if f:
            m[pid] = int(f[1])
    return m


def descendants(root, parents=None):
    """root and every process below it."""
    parents = parents if parents is not None else ppid_map()
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def own_processes(root, child_markers):
    """The supervisor's own processes: root and its descendants, minus the supervised
    children (argv starting with one of child_markers) and whatever runs below them."""
    parents = ppid_map()
    excluded = set()
    for pid in descendants(root, parents):
        if pid == root:
            continue
        cl = cmdline(pid) or b""
        if any(cl.startswith(m) for m in child_markers):
            excluded.update(descendants(pid, parents))
    return [p for p in descendants(root, parents) if p not in excluded]


def cgroup2_path(pid="self"):
    raw = read_bytes(f"/proc/{pid}/cgroup") or b""
    for line in raw.decode().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def memory(pids):
    """(rss_kib, pss_kib, processes counted) summed over pids."""
    rss = pss = n = 0
    for pid in pids:
        raw = read_bytes(f"/proc/{pid}/smaps_rollup")
        if not raw:
            continue
        n += 1
        for line in raw.decode().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss, n


def cpu_sample(pids):
    """dict(ns=run time of every thread, ticks=utime+stime, voluntary=voluntary context
    switches (one per wake-up: a thread that wakes and goes back to sleep blocks once),
    involuntary=preemptions)."""
    ns = ticks = voluntary = involuntary = 0
    for pid in pids:
        f = stat_fields(pid)
        if f:
            ticks += int(f[11]) + int(f[12])
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            s = read_bytes(f"/proc/{pid}/task/{tid}/schedstat")
            if s:
                ns += int(s.split()[0])
            st = read_bytes(f"/proc/{pid}/task/{tid}/status")
            if st:
                for line in st.decode().splitlines():
                    if line.startswith("voluntary_ctxt_switches"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        involuntary += int(line.split()[1])
    return {"ns": ns, "ticks": ticks, "voluntary": voluntary, "involuntary": involuntary}


def pids_with_cmdline(marker):
    return [p for p in all_pids() if (cmdline(p) or b"").startswith(marker)]


class _Record:
    """Per registered argv: pid -> [first exec ns, last exec ns] (CLOCK_MONOTONIC)."""

    def __init__(self):
        self.pids = {}


class _WatcherBase:
    def __init__(self):
        self._lock = threading.Condition()
        self._markers = {}
        self.overflows = 0

    def watch(self, marker):
        """Start recording the execs whose argv starts with marker (bytes, NUL-separated)."""
        with self._lock:
            self._markers[marker] = _Record()

    def forget(self, marker):
        with self._lock:
            self._markers.pop(marker, None)

    def _record(self, pid, ts, cl):
        with self._lock:
            hit = False
            for marker, rec in self._markers.items():
                if cl.startswith(marker):
                    t = rec.pids.get(pid)
                    if t is None:
                        rec.pids[pid] = [ts, ts]
                    else:
                        t[1] = max(t[1], ts)
                    hit = True
            if hit:
                self._lock.notify_all()

    def execs(self, marker, since_ns=0):
        """{pid: last exec ns} of the processes that exec'd marker at or after since_ns.
        "last": a run script that execs `sh` then `sleep` counts at the sleep."""
        with self._lock:
            rec = self._markers.get(marker)
            if rec is None:
                return {}
            return {p: t[1] for p, t in rec.pids.items() if t[1] >= since_ns}

    def wait_for(self, marker, predicate, timeout_s):
        """Wait until predicate(execs(marker)) is true; returns the execs, or None on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                rec = self._markers.get(marker)
                ex = {p: t[1] for p, t in rec.pids.items()} if rec else {}
                if predicate(ex):
                    return ex
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.05))


class ConnectorWatcher(_WatcherBase):
    """Exec events from the kernel's proc connector, timestamped by the kernel."""

    NETLINK_CONNECTOR = 11
    CN_IDX_PROC = 1
    CN_VAL_PROC = 1
    PROC_CN_MCAST_LISTEN = 1
    PROC_CN_MCAST_IGNORE = 2
    PROC_EVENT_EXEC = 0x00000002
    method = "kernel proc connector (exec events, in-kernel CLOCK_MONOTONIC timestamps)"

    def __init__(self):
        super().__init__()
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self.NETLINK_CONNECTOR)
        try:
            s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((0, self.CN_IDX_PROC))
        self._sock = s
        self._send_op(self.PROC_CN_MCAST_LISTEN)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="exec-watcher", daemon=True)
        self._thread.start()
        # Prove it works: our own exec of a short sleep must be seen.
        probe = b"/bin/sleep\x000.31\x00"
        self.watch(probe)
        pid = os.spawnv(os.P_NOWAIT, "/bin/sleep", ["/bin/sleep", "0.31"])
        ok = self.wait_for(probe, lambda ex: pid in ex, 2.0) is not None
        os.waitpid(pid, 0)
        self.forget(probe)
        if not ok:
            self.close()
            raise OSError("proc connector delivered no exec event")

    def _send_op(self, op):
        payload = struct.pack("I", op)
        cn = struct.pack("IIIIHH", self.CN_IDX_PROC, self.CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        nl = struct.pack("IHHII", 16 + len(cn), 3, 0, 0, 0) + cn  # NLMSG_DONE
        self._sock.send(nl)

    def _run(self):
        while not self._stop:
            try:
                data = self._sock.recv(65536)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.overflows += 1
                    continue
                if self._stop:
                    return
                raise
            off = 0
            while off + 16 <= len(data):
                nl_len = struct.unpack_from("I", data, off)[0]
                if nl_len < 16:
                    break
                ev = off + 16 + 20
                if ev + 16 <= off + nl_len:
                    what, _cpu, ts = struct.unpack_from("IIQ", data, ev)
                    if what == self.PROC_EVENT_EXEC:
                        _pid, tgid = struct.unpack_from("ii", data, ev + 16)
                        cl = cmdline(tgid)
                        if cl:
                            self._record(tgid, ts, cl)
                off += (nl_len + 3) & ~3

    def close(self):
        self._stop = True
        try:
            self._send_op(self.PROC_CN_MCAST_IGNORE)
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class ProcScanWatcher(_WatcherBase):
    """Fallback: scan /proc every millisecond; an exec is timed when first seen."""

    method = "scan of /proc/*/cmdline every 1 ms (times to the scan period)"

    def __init__(self):
        super().__init__()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="exec-scanner", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            with self._lock:
                markers = list(self._markers)
            if markers:
                now = mono_ns()
                for pid in all_pids():
                    cl = cmdline(pid)
                    if cl and any(cl.startswith(m) for m in markers):
                        self._record(pid, now, cl)
            time.sleep(0.001)

    def _record(self, pid, ts, cl):
        # First sight is the best estimate of the exec; keep it.
        with self._lock:
            for marker, rec in self._markers.items():
                if cl.startswith(marker) and pid not in rec.pids:
                    rec.pids[pid] = [ts, ts]
                    self._lock.notify_all()

    def close(self):
        self._stop = True


def exec_watcher(force_scan=False):
    if not force_scan:
        try:
            return ConnectorWatcher()
        except OSError:
            pass
    return ProcScanWatcher()
