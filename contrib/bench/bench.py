#!/usr/bin/env python3
"""Ringmaster against supervisord, circus, runit, s6 and systemd --user: same workloads, same
measuring code, peers interleaved (round robin, rotated each repetition), medians.

Run through contrib/bench/run (`make bench`), which installs the peers, builds Ringmaster and
starts this inside scripts/systemd-session. Python 3 standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import peers as peerlib  # noqa: E402
from benchlib import probes as probelib  # noqa: E402
from benchlib import procfs, report, workloads  # noqa: E402

WORKLOADS = ["idle", "start", "restart", "logs", "scale", "probes"]


def log(msg):
    print(f"bench: {msg}", flush=True)


def sh(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def dpkg_version(pkg):
    return sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "?"


def machine(args, root):
    mem_kib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    debian = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?"
    venv_py = os.path.join(args.venv, "bin", "python")
    pyver = lambda mod: sh([venv_py, "-c", f"import importlib.metadata as m; print(m.version('{mod}'))"])  # noqa: E731
    git = sh(["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12"])
    try:
        readahead = open("/sys/block/vda/queue/read_ahead_kb").read().strip() + " KiB (vda)"
    except OSError:
        readahead = "?"
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": f"{os.cpu_count()} cores ({cpu})",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": f"Debian {debian}",
        "readahead": readahead,
        "ringmaster": f"{sh([os.path.join(args.bindir, 'ringmasterd'), '--version'])} (git {git}), "
                      f"release, --static-swift-stdlib; {sh(['swift', '--version']).splitlines()[0] if sh(['swift', '--version']) else 'swift ?'}",
        "supervisor": pyver("supervisor"),
        "circus": pyver("circus"),
        "runit": dpkg_version("runit"),
        "s6": dpkg_version("s6"),
        "systemd": dpkg_version("systemd"),
        "python (venv)": sh([venv_py, "--version"]),
    }


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bindir", help="where ringmasterd and ringctl are")
    ap.add_argument("--venv", help="the venv with supervisor and circus")
    ap.add_argument("--render", metavar="RESULTS.json",
                    help="only write the report again from a run's results.json (e.g. after editing analysis.md)")
    ap.add_argument("--out", default=os.path.join(here, "out"))
    ap.add_argument("--doc", default=os.path.join(root, "docs", "benchmarks.md"),
                    help="where to write the report ('-' for none)")
    ap.add_argument("--quick", action="store_true", help="1 repetition, 10 queries, 5 s idle")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--kills", type=int, default=10, help="kills per repetition (pooled over the repetitions)")
    ap.add_argument("--queries", type=int)
    ap.add_argument("--peers", default=",".join(report.PEER_ORDER))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--ringmaster-mode", choices=["unit", "direct"], default="unit",
                    help="unit: ringmasterd as a user unit made from units/ringmaster.service (default); "
                         "direct: started by the benchmark like the peers")
    ap.add_argument("--ringmaster-unit-extra", action="append", default=[], metavar="LINE",
                    help="experiments: a line added to the unit's [Service], e.g. LimitNOFILE=65536")
    ap.add_argument("--scan", action="store_true", help="time execs by scanning /proc, not the proc connector")
    args = ap.parse_args()
    if args.render:
        raw = json.load(open(args.render))
        peers_present = [p for w in raw["results"].values() for p in w]
        text = render(report.Summary(raw["results"], set(peers_present)), raw, here)
        with open(args.doc, "w") as f:
            f.write(text)
        log(f"wrote {args.doc} from {args.render}")
        return 0
    if not (args.bindir and args.venv):
        ap.error("--bindir and --venv are required")
    reps = args.reps or (1 if args.quick else 3)
    kills = args.kills
    queries = args.queries or (10 if args.quick else 50)
    idle_s = 5.0 if args.quick else 10.0

    if not os.environ.get("XDG_RUNTIME_DIR") or not os.environ.get("RINGMASTER_TEST_SESSION"):
        sys.exit("bench: run me inside scripts/systemd-session (contrib/bench/run does)")

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(args.out, f"run-{stamp}")
    os.makedirs(out, exist_ok=True)
    env = peerlib.Env(root, args.bindir, args.venv, out, args.ringmaster_mode)
    watcher = procfs.exec_watcher(force_scan=args.scan)
    ctx = workloads.Ctx(env, watcher, out, args.quick, kills, queries, idle_s)
    wanted = [p for p in args.peers.split(",") if p]
    peers = [cls(env) for cls in peerlib.ALL if cls.key in wanted]
    for p in peers:
        if p.key == "ringmaster":
            p.unit_extra = list(args.ringmaster_unit_extra)
    wl = [w for w in args.workloads.split(",") if w]
    info = machine(args, root)
    info["exec timing"] = watcher.method
    info["ringmaster mode"] = args.ringmaster_mode
    info["ringmaster unit extra"] = args.ringmaster_unit_extra
    log(f"{reps} repetition(s), {kills} kills, {queries} queries; exec timing: {watcher.method}; out: {out}")

    results = {w: {p.key: [] for p in peers} for w in wl}
    errors, loads = [], []
    t_start = time.monotonic()

    def save():
        raw = {"machine": info, "reps": reps, "kills": kills, "queries": queries, "idle_s": idle_s,
               "loads": loads, "errors": errors, "overflows": watcher.overflows, "results": results,
               "elapsed_s": time.monotonic() - t_start}
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(raw, f, indent=1, default=str)
        return raw
    for rep in range(1, reps + 1):
        loads.append(("start of repetition %d" % rep, loadavg()))
        order = peers[rep - 1:] + peers[:rep - 1]  # round robin, rotated each repetition
        for w in wl:
            for peer in order:
                if w in ("scale", "probes") and peer.key != "ringmaster":
                    continue
                tag = f"r{rep}{w}{peer.key[:4]}"
                wd = os.path.join(out, f"{w}-r{rep}-{peer.key}")
                t0 = time.monotonic()
                try:
                    res = (probelib.probes if w == "probes" else getattr(workloads, w))(ctx, peer, wd, tag)
                except Exception as e:  # one peer's failure must not end the run
                    res = None
                    errors.append(f"repetition {rep}, {w}, {peer.key}: {type(e).__name__}: {e}")
                    log(errors[-1])
                    traceback.print_exc()
                    try:
                        peer.stop()
                    except Exception:
                        pass
                results[w][peer.key].append(res)
                try:
                    line = brief(w, res)
                except Exception as e:
                    line = f"({e})"
                log(f"rep {rep} {w:7s} {peer.key:11s} {time.monotonic() - t0:6.1f}s  {line}")
                save()  # after every measurement: a crash later loses nothing
    loads.append(("end", loadavg()))
    watcher.close()
    raw = save()
    elapsed = raw["elapsed_s"]
    summary = report.Summary(results, [p.key for p in peers])
    text = render(summary, raw, here)
    print(text)
    if args.doc != "-" and not args.quick:
        with open(args.doc, "w") as f:
            f.write(text)
        log(f"wrote {args.doc}")
    elif args.doc != "-":
        quick_doc = os.path.join(out, "benchmarks.md")
        with open(quick_doc, "w") as f:
            f.write(text)
        log(f"quick mode: report in {quick_doc} (docs/benchmarks.md is left as it is)")
    log(f"done in {elapsed / 60:.1f} min; raw figures in {out}/results.json")
    return 1 if errors else 0


def brief(w, r):
    if not r:
        return "FAILED"
    if w == "idle":
        st = ", ".join(f"{k} {v['median_ms']:.2f} ms" for k, v in r["status"].items())
        a = r.get("after_status")
        after = f"; after {a['queries']} queries RSS {a['rss_kib'] / 1024:.1f} MiB PSS {a['pss_kib'] / 1024:.1f}" if a else ""
        return f"RSS {r['rss_kib'] / 1024:.1f} MiB PSS {r['pss_kib'] / 1024:.1f} ({r['procs']} procs), " \
               f"CPU {r['cpu_ms_10s']:.2f} ms/10s, {r['wakeups_10s']:.0f} wake-ups; {st}{after}"
    if w == "start":
        return f"{r['start_ms']:.1f} ms"
    if w == "restart":
        return f"median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms ({r['kills']} kills)"
    if w == "logs":
        return f"{r['lines_per_s'] / 1000:.1f} k lines/s ({r['seconds']:.3f} s, {r['lines']} lines{'' if r['complete'] else ', INCOMPLETE'})"
    if w == "probes":
        return probelib.brief(r)
    if w == "scale":
        st = ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in r["status"].items())
        if r.get("error"):
            return f"{r['error']}; RSS {r['rss_kib'] / 1024:.1f} MiB; {st}"
        return f"start {r['start_ms']:.0f} ms, RSS {r['rss_kib'] / 1024:.1f} MiB PSS {r['pss_kib'] / 1024:.1f}; {st}"
    return ""


def render(summary, raw, here):
    m = raw["machine"]
    watchdog_pings = 2 if m["ringmaster mode"] == "unit" else 0
    lines = [
        "# Benchmarks",
        "",
        "Ringmaster against the supervisors a user would pick instead, on the same machine, with the",
        "same workloads and the same measuring code (`contrib/bench/`). Rerun with **`make bench`**",
        "(20–25 minutes; `make bench QUICK=1` for a 1-repetition check that leaves this file alone).",
        "Everything above *Analysis* is written by `contrib/bench/bench.py`; the analysis is",
        "`contrib/bench/analysis.md`, included as it is.",
        "",
        f"## Machine and versions (run of {m['date']})",
        "",
        f"- {m['cpu']}, {m['memory']} memory, kernel {m['kernel']}, {m['os']}; block-device read-ahead {m['readahead']}",
        f"- Ringmaster: {m['ringmaster']}",
        f"- supervisor {m['supervisor']} and circus {m['circus']} (PyPI, in a venv: {m['python (venv)']});"
        f" runit {m['runit']}, s6 {m['s6']}, systemd {m['systemd']} (Debian)",
        f"- {raw['reps']} repetition(s), peers interleaved (round robin, order rotated each repetition);"
        f" medians over the repetitions. Restart: {raw['kills']} kills per repetition, {raw['kills'] * raw['reps']} in all,"
        f" pooled for the median and p90. Status: {raw['queries']} queries per tool and repetition.",
        f"- Exec times: {m['exec timing']}. Ringmaster run as: "
        + ("a user unit made from `units/ringmaster.service` (Type=notify, WatchdogSec=10s, Delegate=yes), `--log-target journal`."
           if m["ringmaster mode"] == "unit" else "a process started by the benchmark, `--log-target journal` (no watchdog).")
        + (" Unit changed for this run: " + ", ".join(f"`{l}`" for l in m.get("ringmaster unit extra", [])) + "."
           if m.get("ringmaster unit extra") else ""),
        "- Load average (1/5/15 min) during the run: " + "; ".join(f"{k}: {v}" for k, v in raw["loads"])
        + ". **Other builds were running on this machine during the run: figures are noisy**"
        " (CPU-bound ones — start, logs, status — most; memory figures are not affected).",
        "",
        "## Results",
        "",
        summary.table(),
        "",
        "Child = `/bin/sleep`. Memory and CPU are the supervisor's own processes (runit: runsvdir + one",
        "runsv per service; s6: s6-svscan + one s6-supervise per service; systemd: the `systemd --user`",
        "manager alone), never the children. RSS counts a shared page once per process; PSS divides it",
        "among the processes that map it; \"right after the status queries\" is read the moment the last",
        "status query of the idle workload returned (all of the tools timed below), with no quiet period",
        "(Ringmaster drops its executable's start-up and control-path text 2 s after its last activity:",
        "its idle figure is after that trim, the one after the status queries before the next; see Analysis).",
        "Status: each tool's own CLI, one fork+exec+exit per query",
        "(`sv status` for all 10 services at once; `s6-svstat` and `systemctl --user show` for one).",
        "Logs: to journald for Ringmaster and systemd (journald's ingest is the ceiling, see Analysis),",
        "to a file for the others (supervisord/circus: their log file; runit: svlogd; s6: s6-log).",
        "",
    ]
    infra = summary.get("systemd", "infrastructure") or summary.get("ringmaster", "infrastructure") or {}
    if infra:
        lines += ["Shared infrastructure of the session, not counted above: " + ", ".join(
            f"{k} {report.mib(v['rss_kib']):.1f} MiB RSS / {report.mib(v['pss_kib']):.1f} MiB PSS"
            for k, v in sorted(infra.items()) if v.get("rss_kib") is not None) + ".", ""]
    r = summary.ratios()
    if r:
        lines += ["### Ringmaster ÷ peer", "", r, ""]
    if raw["reps"] > 1:
        lines += ["### Each repetition (the spread behind the medians)", "", summary.repetitions(), ""]
    s = summary.scale_table()
    if s:
        lines += ["### Scale", "", s, ""]
    lines += probelib.render(raw["results"].get("probes", {}).get("ringmaster", []))
    lines += ["## Targets (issue 5)", "", "| target | this run | |", "|---|---|---|"]
    for t, fig, v in summary.targets(watchdog_pings):
        lines.append(f"| {t} | {fig} | {v} |")
    lines.append("")
    if raw["errors"] or raw["overflows"]:
        lines += ["### Problems in this run", ""]
        lines += [f"- {e}" for e in raw["errors"]]
        if raw["overflows"]:
            lines.append(f"- the exec watcher's socket overflowed {raw['overflows']} time(s): exec times may be missing")
        lines.append("")
    analysis = os.path.join(here, "analysis.md")
    if os.path.exists(analysis):
        lines += [open(analysis).read().rstrip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
