"""Medians over the repetitions, the table, the Ringmaster/peer ratios, the targets of
issue 5, and docs/benchmarks.md."""

import statistics

PEER_ORDER = ["ringmaster", "supervisord", "circus", "runit", "s6", "systemd"]
LABELS = {"ringmaster": "Ringmaster", "supervisord": "supervisord", "circus": "circus",
          "runit": "runit", "s6": "s6", "systemd": "systemd --user"}
STATUS_TOOL = {"ringmaster": "ringctl status", "supervisord": "supervisorctl status",
               "circus": "circusctl status", "runit": "sv status", "s6": "s6-svstat",
               "systemd": "systemctl --user show"}
NA = "n/a"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, -(-p * len(sorted_values) // 100) - 1))
    return sorted_values[k]


def mib(kib):
    return None if kib is None else kib / 1024


def fmt_ms(v):
    if v is None:
        return NA
    if v < 10:
        return f"{v:.2f} ms"
    if v < 100:
        return f"{v:.1f} ms"
    return f"{v:.0f} ms"


def fmt_rate(v):
    if v is None:
        return NA
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    return f"{v / 1e3:.1f} k"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return NA
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


class Summary:
    """Medians per peer and figure, from results[workload][peer] = [per-repetition dict]."""

    def __init__(self, results, peers):
        self.results = results
        self.peers = [p for p in PEER_ORDER if p in peers]
        self.m = {p: {} for p in self.peers}
        for p in self.peers:
            d = self.m[p]
            idle = [r for r in results.get("idle", {}).get(p, []) if r]
            for k in ("rss_kib", "pss_kib", "procs", "cpu_ms_10s", "cpu_ticks_10s", "wakeups_10s", "preemptions_10s"):
                d[k] = med([r.get(k) for r in idle])
            labels = {l for r in idle for l in r.get("status", {})}
            d["status"] = {l: med([r["status"][l]["median_ms"] for r in idle if l in r.get("status", {})])
                           for l in labels}
            after = [r["after_status"] for r in idle if r.get("after_status")]
            d["after_status"] = {k: med([a.get(k) for a in after]) for k in ("rss_kib", "pss_kib", "queries")} \
                if after else None
            d["status_failures"] = {l: sum(r["status"][l]["failures"] for r in idle if l in r.get("status", {}))
                                    for l in labels}
            # journald's RSS grows with the journal files it maps: the first repetition's
            # figure (before any log workload) is the one that describes it idle.
            infra = [r["infrastructure"] for r in idle if "infrastructure" in r][:1]
            d["infrastructure"] = infra[0] if infra else {}
            d["start_ms"] = med([r.get("start_ms") for r in results.get("start", {}).get(p, []) if r])
            rs = [r for r in results.get("restart", {}).get(p, []) if r]
            # every kill of every repetition, pooled (10 a repetition: 30 in all)
            kills = sorted(t for r in rs for t in r["all_ms"])
            d["restart_median_ms"] = med(kills)
            d["restart_p90_ms"] = percentile(kills, 90)
            d["restart_kills"] = len(kills)
            ls = [r for r in results.get("logs", {}).get(p, []) if r]
            d["lines_per_s"] = med([r["lines_per_s"] for r in ls])
            d["log_complete"] = all(r["complete"] for r in ls) if ls else None
            d["log_destination"] = ls[0]["destination"] if ls else None
            sc = [r for r in results.get("scale", {}).get(p, []) if r]
            if sc:
                d["scale"] = {k: med([r[k] for r in sc]) for k in ("start_ms", "rss_kib", "pss_kib", "running")}
                d["scale"]["services"] = sc[0]["services"]
                d["scale"]["errors"] = [r["error"] for r in sc if r.get("error")]
                sl = {l for r in sc for l in r.get("status", {})}
                d["scale"]["status"] = {l: med([r["status"][l]["median_ms"] for r in sc if l in r["status"]]) for l in sl}

    def get(self, p, k):
        return self.m.get(p, {}).get(k)

    def status_ms(self, p):
        return self.m[p]["status"].get(STATUS_TOOL[p])

    # ------------------------------------------------------------------------------------
    def table(self):
        ps = self.peers
        head = "| metric | " + " | ".join(LABELS[p] for p in ps) + " |"
        sep = "|---|" + "---|" * len(ps)
        rows = [head, sep]

        def row(name, cell):
            rows.append(f"| {name} | " + " | ".join(cell(p) for p in ps) + " |")

        def idle_mem(p):
            r, n = mib(self.get(p, "rss_kib")), self.get(p, "procs")
            if r is None:
                return NA
            return f"{r:.1f} MiB" + (f", {n:.0f} procs" if n and n > 1 else "")

        row("idle, 10 children: RSS of the supervisor's own processes", idle_mem)
        row("idle: PSS", lambda p: NA if self.get(p, "pss_kib") is None else f"{mib(self.get(p, 'pss_kib')):.1f} MiB")

        def after_status(p):
            a = self.get(p, "after_status")
            if not a or a["rss_kib"] is None:
                return NA
            return f"{mib(a['rss_kib']):.1f} / {mib(a['pss_kib']):.1f} MiB ({a['queries']:.0f} queries)"

        row("idle: RSS / PSS right after the status queries", after_status)
        row("idle: CPU over 10 s", lambda p: fmt_ms(self.get(p, "cpu_ms_10s")))
        row("idle: wake-ups over 10 s (voluntary context switches)",
            lambda p: NA if self.get(p, "wakeups_10s") is None else f"{self.get(p, 'wakeups_10s'):.0f}")
        row("start 100 children", lambda p: fmt_ms(self.get(p, "start_ms")))
        row("restart after SIGKILL: kill → new child exec'd, median / p90",
            lambda p: NA if self.get(p, "restart_median_ms") is None else
            f"{fmt_ms(self.get(p, 'restart_median_ms'))} / {fmt_ms(self.get(p, 'restart_p90_ms'))}")

        def logcell(p):
            v = self.get(p, "lines_per_s")
            if v is None:
                return NA
            dest = {"journal": "journald", "files": "file"}.get(self.get(p, "log_destination"), "")
            warn = "" if self.get(p, "log_complete") else " (LINES LOST)"
            return f"{fmt_rate(v)} ({dest}){warn}"

        row("log lines/s to the destination (200,000 × 100 B)", logcell)
        row("status CLI round trip (median)",
            lambda p: f"{fmt_ms(self.status_ms(p))} `{STATUS_TOOL[p]}`")
        row("`busctl --user get-property … Version`",
            lambda p: fmt_ms(self.m[p]["status"].get("busctl get-property")) if p in ("ringmaster", "systemd") else "—")
        return "\n".join(rows)

    def ratios(self):
        if "ringmaster" not in self.peers:
            return ""
        others = [p for p in self.peers if p != "ringmaster"]
        rows = ["| Ringmaster ÷ peer | " + " | ".join(LABELS[p] for p in others) + " |",
                "|---|" + "---|" * len(others)]
        rm = self.m["ringmaster"]

        def row(name, f):
            rows.append(f"| {name} | " + " | ".join(f(p) for p in others) + " |")

        row("idle RSS (lower is better)", lambda p: fmt_ratio(rm["rss_kib"], self.get(p, "rss_kib")))
        row("idle PSS", lambda p: fmt_ratio(rm["pss_kib"], self.get(p, "pss_kib")))
        row("start 100", lambda p: fmt_ratio(rm["start_ms"], self.get(p, "start_ms")))
        row("restart median", lambda p: fmt_ratio(rm["restart_median_ms"], self.get(p, "restart_median_ms")))
        row("log lines/s (higher is better)", lambda p: fmt_ratio(rm["lines_per_s"], self.get(p, "lines_per_s")))
        row("status CLI round trip", lambda p: fmt_ratio(self.status_ms("ringmaster"), self.status_ms(p)))
        return "\n".join(rows)

    def repetitions(self):
        """Each repetition's figure, to show the spread behind the medians on a busy machine."""
        ps = self.peers
        rows = ["| per repetition | " + " | ".join(LABELS[p] for p in ps) + " |", "|---|" + "---|" * len(ps)]

        def row(name, w, f):
            cells = []
            for p in ps:
                vals = [f(r) for r in self.results.get(w, {}).get(p, [])]
                cells.append(" / ".join(NA if v is None else v for v in vals) or NA)
            rows.append(f"| {name} | " + " | ".join(cells) + " |")

        row("idle RSS (MiB)", "idle", lambda r: r and f"{r['rss_kib'] / 1024:.1f}")
        row("RSS after status queries (MiB)", "idle",
            lambda r: r and r.get("after_status") and f"{r['after_status']['rss_kib'] / 1024:.1f}")
        row("start 100 (ms)", "start", lambda r: r and f"{r['start_ms']:.0f}")
        row("restart median (ms)", "restart", lambda r: r and (f"{r['median_ms']:.2f}" if r['median_ms'] < 100 else f"{r['median_ms']:.0f}"))
        row("log lines/s (k)", "logs", lambda r: r and f"{r['lines_per_s'] / 1000:.0f}")
        row("status CLI (ms)", "idle", lambda r: r and next(
            (f"{v['median_ms']:.2f}" for k, v in r["status"].items() if k == STATUS_TOOL[self._peer_of(r)]), None))
        return "\n".join(rows)

    def _peer_of(self, result):
        for p in self.peers:
            if any(result is r for r in self.results.get("idle", {}).get(p, [])):
                return p
        return None

    def scale_table(self):
        sc = self.m.get("ringmaster", {}).get("scale")
        if not sc:
            return ""
        start = fmt_ms(sc["start_ms"]) if not sc["errors"] else \
            f"**failed**: {sc['running']:.0f} of {sc['services']} running ({sc['errors'][0]})"
        rows = ["| Ringmaster, 1000 services × 1 instance | median |", "|---|---|",
                f"| start (launch → all 1000 exec'd and running) | {start} |",
                f"| daemon RSS / PSS | {mib(sc['rss_kib']):.1f} / {mib(sc['pss_kib']):.1f} MiB |"]
        for label in ("ringctl status", "busctl call ListServices"):
            rows.append(f"| `{label}` | {fmt_ms(sc['status'].get(label))} |")
        return "\n".join(rows)

    # ------------------------------------------------------------------------------------
    def targets(self, watchdog_pings):
        """[(target, figure, verdict)] for issue 5's targets."""
        rm = self.m.get("ringmaster")
        if not rm:
            return []
        out = []

        def verdict(ok):
            return NA if ok is None else ("**met**" if ok else "**missed**")

        rss = rm["rss_kib"]
        after = rm.get("after_status")
        after_text = "" if not after or after["rss_kib"] is None else \
            f"; {mib(after['rss_kib']):.1f} MiB right after {after['queries']:.0f} status queries"
        out.append(("idle RSS ≤ 6 MiB with 10 children",
                    NA if rss is None else f"{mib(rss):.1f} MiB (PSS {mib(rm['pss_kib']):.1f}){after_text}",
                    verdict(None if rss is None else rss <= 6 * 1024)))
        s6 = self.get("s6", "start_ms")
        out.append(("start of 100 ≤ s6's time",
                    f"{fmt_ms(rm['start_ms'])} vs s6 {fmt_ms(s6)}",
                    verdict(None if None in (rm["start_ms"], s6) else rm["start_ms"] <= s6)))
        rn = self.get("runit", "restart_median_ms")
        out.append(("restart median ≤ runit's",
                    f"{fmt_ms(rm['restart_median_ms'])} vs runit {fmt_ms(rn)}",
                    verdict(None if None in (rm["restart_median_ms"], rn) else rm["restart_median_ms"] <= rn)))
        rc, sc = self.status_ms("ringmaster"), self.status_ms("systemd") if "systemd" in self.m else None
        out.append(("`ringctl status` ≤ ½ × `systemctl --user show`",
                    (f"{fmt_ms(rc)} vs ½ × {fmt_ms(sc)}" if rc is not None else
                     f"`ringctl status` not in this build (systemctl --user show: {fmt_ms(sc)})"),
                    verdict(None if None in (rc, sc) else rc <= sc / 2)))
        rl, sl = rm["lines_per_s"], self.get("systemd", "lines_per_s")
        out.append(("log throughput ≥ 0.95 × systemd's",
                    f"{fmt_rate(rl)} vs 0.95 × {fmt_rate(sl)} lines/s",
                    verdict(None if None in (rl, sl) else rl >= 0.95 * sl and bool(rm["log_complete"]))))
        w, c = rm["wakeups_10s"], rm["cpu_ms_10s"]
        out.append((f"zero CPU while idle but the watchdog ping (≤ {watchdog_pings} wake-ups per 10 s)",
                    NA if w is None else f"{w:.0f} wake-up(s), {c:.2f} ms CPU per 10 s",
                    verdict(None if w is None else w <= watchdog_pings + 0.5 and c < 1.0)))
        return out
