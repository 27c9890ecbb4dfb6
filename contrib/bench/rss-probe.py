#!/usr/bin/env python3
"""Where ringmasterd's idle RSS goes, and what would bring it down: the investigation behind
the "idle RSS" part of docs/benchmarks.md. Run through contrib/bench/rss-variants, which
builds the variants and starts this inside scripts/systemd-session.

For each BINDIR (a build of ringmasterd) and each runtime experiment, ringmasterd runs as the
bench runs it (a user unit made from units/ringmaster.service, 10 children, --log-target
journal); after 3 s of settling and 10 s of idling its memory is read from /proc/PID/smaps
and split by mapping; then after 5 `ringctl status`, and again 4 s later (the daemon trims
its working set 2-2.5 s after the last call). Experiments (they change how the pages are
mapped, not the code):

  as-is      nothing: the daemon as shipped, which trims its working set itself
             (WorkingSetTrim: MADV_DONTNEED over its clean mappings 2 s after the last activity)
  no-trim    RINGMASTER_TRIM_DELAY_MS=0 in the unit: the daemon without its trim
  pageout    after settling, process_madvise(MADV_PAGEOUT) over every mapping: the clean
             file pages only this process maps are dropped, and the 10 s of idling fault back
             in only what idling touches — the floor that any "map less text" measure can reach
  random     LD_PRELOAD shim that madvise(MADV_RANDOM)s the executable's mappings before main:
             no read-ahead / fault-around on them (what a one-line madvise at the top of main
             would do)
  dontneed   LD_PRELOAD shim around sd_notify(): 2 s after READY=1 (every autostart service
             started), madvise(MADV_DONTNEED) over the executable's clean, read-only
             mappings (its text and read-only data): the start-up code leaves the RSS and
             stays in the page cache; what runs later faults back in (minor faults). How
             the trim was measured before the daemon did it itself (with no-trim builds)
  touched    clear_refs after settling, then the pages referenced during the 10 s of idling
             (meaningful for private mappings only: a shared library's pages are marked
             referenced by every process that uses them)
"""

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import peers as peerlib  # noqa: E402
from benchlib import procfs, workloads  # noqa: E402

MADV_RANDOM, MADV_PAGEOUT = 1, 21
# experiments that run the build as it is with environment variables set in the unit
ENVIRONMENT = {"no-trim": ["RINGMASTER_TRIM_DELAY_MS=0"]}
RINGCTL = None  # the same ringctl for every build: it is the daemon that is measured
SYS_process_madvise = 440

PRELOAD_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
__attribute__((constructor)) static void madvise_random_exe(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    unsetenv("LD_PRELOAD");
    if (n <= 0) return;
    exe[n] = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) != 2) continue;
        char *path = strchr(line, '/');
        if (!path) continue;
        path[strcspn(path, "\n")] = 0;
        if (strcmp(path, exe) == 0) madvise((void *)a, b - a, MADV_RANDOM);
    }
    fclose(f);
}
"""


DONTNEED_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static void drop_clean_text(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return;
    char line[8192], perms[8] = "";
    unsigned long a = 0, b = 0;
    int mine = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long x, y;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &x, &y, p) == 3 && strchr(line, ' ')) {
            char *path = strchr(line, '/');
            if (path) path[strcspn(path, "\n")] = 0;
            a = x; b = y; strcpy(perms, p);
            mine = path && strcmp(path, exe) == 0;
            continue;
        }
        unsigned long dirty;
        /* Only clean, read-only pages: never RELRO's relocated (dirty) copies. */
        if (mine && sscanf(line, "Private_Dirty: %lu kB", &dirty) == 1 && dirty == 0 && !strchr(perms, 'w'))
            madvise((void *)a, b - a, MADV_DONTNEED);
    }
    fclose(f);
}
static void *later(void *arg) {
    (void)arg;
    sleep(2);
    drop_clean_text();
    return NULL;
}
int sd_notify(int unset_environment, const char *state) {
    static int (*real)(int, const char *);
    static int done;
    if (!real) real = (int (*)(int, const char *))dlsym(RTLD_NEXT, "sd_notify");
    int r = real(unset_environment, state);
    if (!done && state && strstr(state, "READY=1")) {
        done = 1;
        /* 2 s later (a one-shot timer on the loop, in the daemon), so that the work
           around READY=1 is done: STATUS=, journal entries, the bus name. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);  /* the thread must take none of the daemon's signals */
        pthread_t t;
        if (pthread_create(&t, NULL, later, NULL) == 0) pthread_detach(t);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return r;
}
"""


def category(path, perms, exe):
    if path == exe:
        return "ringmasterd " + ("text (r-x)" if "x" in perms else "data (r--/rw-)")
    base = os.path.basename(path)
    if base.startswith("libstdc++"):
        return "libstdc++"
    if base.startswith(("libc.so", "libm.so", "ld-linux", "libgcc_s")):
        return "libc, libm, ld.so, libgcc_s"
    if base.startswith(("libsystemd", "libgcrypt", "libgpg-error", "liblzma", "libzstd", "liblz4", "libcap")):
        return "libsystemd + gcrypt, gpg-error, lzma, zstd, lz4, cap"
    if path in ("[heap]", ""):
        return "heap and anonymous"
    if path == "[stack]":
        return "stack"
    return "other"


def smaps(pid):
    """[(start, end, category, {Rss, Pss, Referenced, Private_Dirty, ...} kB)]"""
    exe = os.readlink(f"/proc/{pid}/exe")
    out, cur = [], None
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            a, b = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5] if len(parts) > 5 else ""
            cur = [a, b, category(path, parts[1], exe), {}]
            out.append(cur)
        elif cur and parts[0].endswith(":") and len(parts) >= 2 and parts[1].isdigit():
            cur[3][parts[0][:-1]] = int(parts[1])
    return out


def breakdown(pid):
    cats = {}
    for _, _, c, f in smaps(pid):
        d = cats.setdefault(c, {"Rss": 0, "Pss": 0, "Referenced": 0, "Private_Dirty": 0})
        for k in d:
            d[k] += f.get(k, 0)
    return cats


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def pageout(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.pidfd_open(pid)
    try:
        for a, b, _, _ in smaps(pid):
            v = IoVec(a, b - a)
            libc.syscall(SYS_process_madvise, fd, ctypes.byref(v), 1, MADV_PAGEOUT, 0)
    finally:
        os.close(fd)


def build_preload(out, name, source):
    src, lib = os.path.join(out, f"{name}.c"), os.path.join(out, f"{name}.so")
    with open(src, "w") as f:
        f.write(source)
    cc = "cc" if subprocess.run(["sh", "-c", "command -v cc"], stdout=subprocess.DEVNULL).returncode == 0 else "clang"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", lib, src, "-ldl", "-lpthread"], check=True)
    return lib


def measure(env, watcher, label, experiment, reps, preload, out):
    results = []
    for rep in range(reps):
        peer = peerlib.Ringmaster(env)
        if experiment in preload:
            peer.unit_extra = [f"Environment=LD_PRELOAD={preload[experiment]}"]
        if experiment in ENVIRONMENT:
            peer.unit_extra = [f"Environment={e}" for e in ENVIRONMENT[experiment]]
        arg = workloads.IDLE_ARG
        m = workloads.marker(arg)
        workloads.ensure_no_children(arg)
        watcher.watch(m)
        wd = os.path.join(out, f"{label}-{experiment}-{rep}")
        peer.configure(wd, f"p{rep}{experiment[:3]}", [peerlib.Svc("idle", [workloads.SLEEP, arg], 10)])
        t0 = procfs.mono_ns()
        peer.launch()
        try:
            workloads.wait_children(workloads.Ctx(env, watcher, out, False, 0, 0, 10), arg, 10, t0, 60)
            time.sleep(3)
            pid = peer.root_pid()
            if experiment == "pageout":
                pageout(pid)
            if experiment == "touched":
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("1")
            time.sleep(10)
            rss, pss, _ = procfs.memory([pid])
            cats = breakdown(pid)
            # then some control traffic: what it faults back in, and what the first query costs
            ringctl = [RINGCTL, "status"]
            t = time.perf_counter()
            subprocess.run(ringctl, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            first_ms = (time.perf_counter() - t) * 1000
            for _ in range(4):
                subprocess.run(ringctl, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rss2, _, _ = procfs.memory([pid])
            # and once the daemon has been quiet again (its trim comes 2-2.5 s after the last call)
            time.sleep(4)
            rss3, pss3, _ = procfs.memory([pid])
            results.append({"rss": rss, "pss": pss, "cats": cats, "rss_after_status": rss2,
                            "rss_quiet_again": rss3, "pss_quiet_again": pss3, "first_status_ms": first_ms})
        finally:
            peer.stop()
            watcher.forget(m)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", metavar="LABEL=BINDIR")
    ap.add_argument("--experiments", default="no-trim,as-is,pageout,touched",
                    help="of no-trim, as-is, pageout, random, dontneed, touched")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "rss"))
    ap.add_argument("--ringctl", required=True, help="the ringctl used for the status queries")
    args = ap.parse_args()
    global RINGCTL
    RINGCTL = args.ringctl
    os.makedirs(args.out, exist_ok=True)
    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    watcher = procfs.exec_watcher()
    preload = {"random": build_preload(args.out, "madv-random", PRELOAD_C),
               "dontneed": build_preload(args.out, "drop-text-at-ready", DONTNEED_C)}
    rows = []
    for spec in args.builds:
        label, bindir = spec.split("=", 1)
        env = peerlib.Env(root, bindir, None, args.out, "unit")
        exe = os.path.join(bindir, "ringmasterd")
        sizes = subprocess.run(["size", "-A", exe], stdout=subprocess.PIPE, text=True).stdout
        text = sum(int(l.split()[1]) for l in sizes.splitlines()[2:] if l.split() and l.split()[0] in (".text",))
        for exp in args.experiments.split(","):
            if label != "base" and exp in ("touched", "random", "pageout"):
                continue
            res = measure(env, watcher, label, exp, args.reps, preload, args.out)
            rss = statistics.median(r["rss"] for r in res) / 1024
            pss = statistics.median(r["pss"] for r in res) / 1024
            after = statistics.median(r["rss_after_status"] for r in res) / 1024
            again = statistics.median(r["rss_quiet_again"] for r in res) / 1024
            first = statistics.median(r["first_status_ms"] for r in res)
            cats = res[len(res) // 2]["cats"]
            key = "Referenced" if exp == "touched" else "Rss"
            detail = "; ".join(f"{c} {v[key] / 1024:.2f}" for c, v in sorted(cats.items(), key=lambda kv: -kv[1][key]) if v[key])
            rows.append((label, exp, text / 2**20, rss, pss, after, again, first, detail))
            print(f"{label:14s} {exp:8s} .text {text / 2**20:5.2f} MiB  RSS {rss:5.2f} MiB  PSS {pss:5.2f} MiB  "
                  f"RSS after 5 status {after:5.2f} MiB, 4 s later {again:5.2f} MiB, first status {first:.1f} ms  "
                  f"[{'referenced while idle' if exp == 'touched' else 'RSS'} MiB: {detail}]", flush=True)
    watcher.close()
    print()
    print("| build | experiment | .text | idle RSS | idle PSS | RSS after 5 `ringctl status` | 4 s later | first `ringctl status` | idle RSS by mapping (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, exp, t, rss, pss, after, again, first, detail in rows:
        print(f"| {label} | {exp} | {t:.2f} MiB | {rss:.2f} MiB | {pss:.2f} MiB | {after:.2f} MiB | {again:.2f} MiB | {first:.1f} ms | {detail} |")


if __name__ == "__main__":
    main()
