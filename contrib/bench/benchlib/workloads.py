"""The workloads. Each takes a peer and returns a dict of figures; the child is always
/bin/sleep with an argv no other process has (e.g. `/bin/sleep 987620`), so that the exec
watcher and /proc scans find exactly the supervised children.

Clocks: CLOCK_MONOTONIC for everything the exec watcher times (the kernel stamps exec
events with it); CLOCK_REALTIME only in the log workload, where the writer stamps its own
start with `date +%s%N`.
"""

import glob
import os
import random
import signal
import statistics
import struct
import subprocess
import time

from . import procfs
from .peers import Svc
from .report import percentile

SLEEP = "/bin/sleep"
IDLE_ARG, START_ARG, RESTART_ARG, LOGS_ARG, SCALE_ARG = "987610", "987620", "987630", "987640", "987650"
LOG_LINES = 200_000
LINE_BYTES = 100


def marker(arg):
    return f"{SLEEP}\x00{arg}\x00".encode()


class Ctx:
    def __init__(self, env, watcher, out, quick, kills, queries, idle_s):
        self.env, self.watcher, self.out = env, watcher, out
        self.quick, self.kills, self.queries, self.idle_s = quick, kills, queries, idle_s


def ensure_no_children(arg, timeout_s=15):
    """Wait until no process has this argv (left from a previous peer), else kill them."""
    m = marker(arg)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not procfs.pids_with_cmdline(m):
            return
        time.sleep(0.05)
    for pid in procfs.pids_with_cmdline(m):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def wait_children(ctx, arg, n, since_ns, timeout_s):
    """Wait until n distinct processes exec'd `sleep ARG` at or after since_ns; returns
    {pid: exec ns}. A run script that execs sh then sleep is timed at the sleep: the watcher
    keeps each pid's last matching exec, and we let stragglers' second exec arrive."""
    m = marker(arg)
    ex = ctx.watcher.wait_for(m, lambda e: sum(1 for t in e.values() if t >= since_ns) >= n, timeout_s)
    if ex is None:
        got = len(ctx.watcher.execs(m, since_ns))
        raise TimeoutError(f"only {got} of {n} children exec'd within {timeout_s}s")
    time.sleep(0.05)
    return ctx.watcher.execs(m, since_ns)


def prepare(ctx, peer, wd, tag, arg, services):
    """What every workload does first: no leftover `sleep ARG` from a previous peer, exec
    events of `sleep ARG` watched, the peer configured with `services`. Returns the marker
    (for ctx.watcher.forget)."""
    m = marker(arg)
    ensure_no_children(arg)
    ctx.watcher.watch(m)
    peer.configure(wd, tag, services)
    return m


def time_command(argv, n, timeout_s=60):
    """Wall time of n runs of argv (fork+exec+wait, output discarded); ms, and failures."""
    times, failures = [], 0
    for _ in range(n):
        t0 = time.perf_counter_ns()
        try:
            r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout_s)
            failures += r.returncode != 0
        except subprocess.TimeoutExpired:
            failures += 1
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times, failures


# ----------------------------------------------------------------------------------------
def idle(ctx, peer, wd, tag):
    """10 children; after a settle, the supervisor's own processes over ctx.idle_s seconds:
    CPU, wake-ups, RSS/PSS at the end; then the control round trips on the same setup, and
    RSS/PSS again right after them."""
    arg = IDLE_ARG
    m = prepare(ctx, peer, wd, tag, arg, [Svc("idle", [SLEEP, arg], 10)])
    t0 = procfs.mono_ns()
    peer.launch()
    try:
        wait_children(ctx, arg, 10, t0, 60)
        time.sleep(3)  # let start-up work (imports, first ticks, READY=1 handling) finish
        pids = peer.own_pids([m])
        a = procfs.cpu_sample(pids)
        ta = time.monotonic()
        time.sleep(ctx.idle_s)
        pids2 = peer.own_pids([m])
        b = procfs.cpu_sample(pids2)
        window = time.monotonic() - ta
        rss, pss, nproc = procfs.memory(pids2)
        scale = 10.0 / window  # report per 10 s exactly
        res = {
            "rss_kib": rss, "pss_kib": pss, "procs": nproc,
            "cpu_ms_10s": (b["ns"] - a["ns"]) / 1e6 * scale,
            "cpu_ticks_10s": (b["ticks"] - a["ticks"]) * scale,
            "wakeups_10s": (b["voluntary"] - a["voluntary"]) * scale,
            "preemptions_10s": (b["involuntary"] - a["involuntary"]) * scale,
            "children": len(procfs.pids_with_cmdline(m)),
        }
        if peer.key == "systemd" or peer.key == "ringmaster":
            infra = {}
            for name, ps in ctx.env.infrastructure_pids().items():
                r2, p2, _ = procfs.memory(ps)
                infra[name] = {"rss_kib": r2, "pss_kib": p2}
            res["infrastructure"] = infra
        # control round trip, on the same 10 children
        res["status"] = {}
        for label, argv in peer.status_commands():
            times, failures = time_command(argv, ctx.queries)
            res["status"][label] = {"median_ms": statistics.median(times), "failures": failures,
                                    "argv": argv}
        # ... and the memory right after them, by the same code as the idle figure: what the
        # control path faulted in (or allocated) is in it, before any quiet period
        rss_q, pss_q, _ = procfs.memory(peer.own_pids([m]))
        res["after_status"] = {"queries": ctx.queries * len(res["status"]), "rss_kib": rss_q, "pss_kib": pss_q}
        return res
    finally:
        peer.stop()
        ctx.watcher.forget(m)


def start(ctx, peer, wd, tag, n=100, arg=START_ARG):
    """n children configured; from the launch of the supervisor (systemd: from `systemctl
    --user start --no-block`) until the last of the n has exec'd."""
    m = prepare(ctx, peer, wd, tag, arg, [Svc("start", [SLEEP, arg], n)])
    try:
        t0 = procfs.mono_ns()
        peer.launch()
        ex = wait_children(ctx, arg, n, t0, 120)
        last = sorted(ex.values())[n - 1]
        return {"start_ms": (last - t0) / 1e6, "children": len(ex)}
    finally:
        peer.stop()
        ctx.watcher.forget(m)


KILL_AFTER_MIN_S, KILL_PHASE_S = 1.05, 1.2


def restart(ctx, peer, wd, tag):
    """One child; SIGKILL it at a random phase, and time from the kill to the replacement's
    exec. The kill comes 1.05 s + U(0, 1.2 s) after the previous replacement exec'd: a random
    phase against supervisord's 1 s tick and circus's check_delay, and past the 1 s minimum
    run time below which runsv (like s6-supervise) waits 1 s before a restart — that pause is
    crash-loop protection, not the restart path, and a kill within 1 s would time it instead."""
    arg = RESTART_ARG
    m = prepare(ctx, peer, wd, tag, arg, [Svc("restart", [SLEEP, arg], 1)])
    rng = random.Random()
    times = []
    try:
        t0 = procfs.mono_ns()
        peer.launch()
        ex = wait_children(ctx, arg, 1, t0, 60)
        child = max(ex, key=ex.get)
        time.sleep(1.0)
        for _ in range(ctx.kills):
            time.sleep(KILL_AFTER_MIN_S + rng.uniform(0, KILL_PHASE_S))
            k = procfs.mono_ns()
            os.kill(child, signal.SIGKILL)
            got = ctx.watcher.wait_for(m, lambda e: any(p != child and t >= k for p, t in e.items()), 20)
            if got is None:
                raise TimeoutError(f"no replacement within 20 s after kill {len(times) + 1}")
            time.sleep(0.02)  # a second exec of the same pid (sh -> sleep) may follow
            new = {p: t for p, t in ctx.watcher.execs(m, k).items() if p != child}
            child = max(new, key=new.get)
            times.append((new[child] - k) / 1e6)
        s = sorted(times)
        return {"median_ms": statistics.median(s), "p90_ms": percentile(s, 90), "kills": len(s),
                "all_ms": times}
    finally:
        peer.stop()
        ctx.watcher.forget(m)


# ----------------------------------------------------------------------------------------
def log_data(out):
    """The 200,000 lines of 100 bytes the writer `cat`s: L000…001 … L000…200000."""
    path = os.path.join(out, "blog.data")
    if not os.path.exists(path) or os.path.getsize(path) != LOG_LINES * LINE_BYTES:
        with open(path + ".tmp", "wb") as f:
            subprocess.run(["seq", "-f", "L%098.0f", "1", str(LOG_LINES)], stdout=f, check=True)
        os.rename(path + ".tmp", path)
    return path


def last_line():
    return "L" + str(LOG_LINES).rjust(98, "0")


class JournalEntries:
    """Entries in this session's journal files, read from their headers (n_entries, a le64
    at offset 152 in systemd 252's header, updated in place as journald appends): a poll
    that costs a few preads, not a journalctl run, so it does not compete with journald."""

    OFFSET = 152

    def __init__(self):
        self.pattern = "/run/log/journal/*/*.journal"

    def total(self):
        n = 0
        for path in glob.glob(self.pattern):
            try:
                with open(path, "rb") as f:
                    b = os.pread(f.fileno(), 8, self.OFFSET)
                n += struct.unpack("<Q", b)[0]
            except (OSError, struct.error):
                pass
        return n


def journal_lines(ident, last_only=False):
    argv = ["journalctl", "--no-pager", "-t", ident, "-o", "cat"] + (["-n", "1"] if last_only else [])
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    return out.decode(errors="replace").splitlines()


def file_paths(dest):
    paths = []
    for p in dest:
        if os.path.isdir(p):
            paths += [os.path.join(p, f) for f in os.listdir(p) if f == "current" or f.startswith("@")]
        elif os.path.exists(p):
            paths.append(p)
    return paths


def logs(ctx, peer, wd, tag):
    """A child writes 200,000 lines of 100 bytes (cat of a prepared file) as fast as the
    destination takes them; from the writer's own start stamp until all are there."""
    data = log_data(ctx.out)
    name = f"blog-{tag}"
    writer = os.path.join(wd, "blogwriter")
    stamp = os.path.join(wd, "t0")
    os.makedirs(wd, exist_ok=True)
    with open(writer, "w") as f:
        f.write(f"#!/bin/sh\ndate +%s%N > {stamp}\ncat {data}\nexec {SLEEP} {LOGS_ARG}\n")
    os.chmod(writer, 0o755)
    ensure_no_children(LOGS_ARG)
    svc = Svc(name, [writer], 1, logs=True)
    peer.configure(wd, tag, [svc])
    kind, dest = peer.log_destination(svc)
    journal = JournalEntries()
    want_bytes = LOG_LINES * LINE_BYTES
    try:
        base = journal.total() if kind == "journal" else 0
        peer.launch()
        deadline = time.monotonic() + 180
        while not (os.path.exists(stamp) and os.path.getsize(stamp) > 0):
            if time.monotonic() > deadline:
                raise TimeoutError("the log writer did not start")
            time.sleep(0.001)
        t0 = int(open(stamp).read().strip())
        if kind == "journal":
            while journal.total() < base + LOG_LINES:
                if time.monotonic() > deadline:
                    raise TimeoutError("journald did not get the lines")
                time.sleep(0.001)
            t1 = time.time_ns()
            while journal_lines(name, last_only=True)[-1:] != [last_line()]:
                if time.monotonic() > deadline:
                    raise TimeoutError("the last line never reached the journal")
                time.sleep(0.01)
                t1 = time.time_ns()
            lines = journal_lines(name)
            count = sum(1 for l in lines if l.startswith("L"))
            ok_last = lines[-1:] == [last_line()]
        else:
            while sum(os.path.getsize(p) for p in file_paths(dest)) < want_bytes:
                if time.monotonic() > deadline:
                    raise TimeoutError("the lines did not reach the files")
                time.sleep(0.0005)
            t1 = time.time_ns()
            count, ok_last = 0, False
            for p in sorted(file_paths(dest)):
                with open(p, "rb") as f:
                    content = f.read()
                count += content.count(b"\n")
                ok_last = ok_last or (last_line().encode() + b"\n") in content[-200:]
        if kind == "files":  # 20 MB a run: keep the counts, not the copies
            for p in file_paths(dest):
                os.unlink(p)
        secs = (t1 - t0) / 1e9
        return {"seconds": secs, "lines_per_s": LOG_LINES / secs, "lines": count,
                "complete": count == LOG_LINES and ok_last, "destination": kind}
    finally:
        peer.stop()


# ----------------------------------------------------------------------------------------
def fd_census(pid):
    """The daemon's open fds by kind (socket, anon_inode:[pidfd], a path's directory…) and its
    RLIMIT_NOFILE soft limit."""
    kinds = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            kind = target.split(":[")[0] if ":[" in target else \
                ("anon_inode:" + target.split(":", 1)[1] if target.startswith("anon_inode:") else os.path.dirname(target))
            kinds[kind] = kinds.get(kind, 0) + 1
        for line in open(f"/proc/{pid}/limits"):
            if line.startswith("Max open files"):
                kinds["(soft limit)"] = int(line.split()[3])
    except OSError:
        pass
    return kinds


def scale(ctx, peer, wd, tag, n=1000):
    """Ringmaster with n services of 1 instance: start time, daemon RSS/PSS, status time."""
    arg = SCALE_ARG
    m = prepare(ctx, peer, wd, tag, arg, [Svc(f"s{i:04d}", [SLEEP, arg], 1) for i in range(1, n + 1)])
    try:
        t0 = procfs.mono_ns()
        peer.launch()
        # Wait for n execs, or until none came for 10 s (spawns failing for good).
        seen, last_change = 0, time.monotonic()
        while time.monotonic() - last_change < 10 and time.monotonic() - t0 / 1e9 < 300:
            got = len(ctx.watcher.execs(m, t0))
            if got >= n:
                break
            if got != seen:
                seen, last_change = got, time.monotonic()
            ctx.watcher.wait_for(m, lambda e: sum(1 for t in e.values() if t >= t0) >= n, 1.0)
        # Every one of the n must be running at once (a spawn that fails, e.g. on EMFILE, and
        # is retried would otherwise still add up to n execs).
        deadline, last_change, alive = time.monotonic() + 120, time.monotonic(), 0
        while time.monotonic() < deadline and time.monotonic() - last_change < 10:
            now_alive = len(procfs.pids_with_cmdline(m))
            if now_alive != alive:
                alive, last_change = now_alive, time.monotonic()
            if alive >= n:
                break
            time.sleep(0.5)
        ex = ctx.watcher.execs(m, t0)
        res = {"services": n, "running": alive, "execs": len(ex)}
        if alive < n:
            res["start_ms"] = None
            res["error"] = f"{len(ex)} execs, spawns failing and retried"
        else:
            res["start_ms"] = (sorted(ex.values())[n - 1] - t0) / 1e6 if len(ex) == n else \
                (max(ex.values()) - t0) / 1e6
        time.sleep(3)
        rss, pss, nproc = procfs.memory(peer.own_pids([m]))
        res.update(rss_kib=rss, pss_kib=pss, procs=nproc, status={}, fds=fd_census(peer.root_pid()))
        for label, argv in peer.scale_status_commands():
            times, failures = time_command(argv, 3)
            res["status"][label] = {"median_ms": statistics.median(times), "failures": failures}
        return res
    finally:
        peer.stop()
        ctx.watcher.forget(m)
