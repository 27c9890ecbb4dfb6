// The probe tables of a [services.NAME] table: `liveness` and `readiness` (Probe.swift has
// the model), and the rule that ties `ready = "probe"` to a readiness table.

extension ConfigValidator {
    static let probeTables = ["liveness", "readiness"]
    static let probeKeys = ["http", "tcp", "exec", "interval", "timeout", "initial-delay", "failures", "successes"]
    static let probeChecks = ["http", "tcp", "exec"]

    /// Decodes `entry` into `service` if it is a probe table; false if it is not one.
    mutating func probeKey(_ entry: TOMLEntry, into service: inout ServiceConfig, context: String,
                           refs: inout ServiceReferences) -> Bool {
        guard let kind = ProbeKind(rawValue: entry.key) else { return false }
        let probe = probeTable(entry, context: String(context.dropLast()) + ".\(kind.rawValue)]", refs: &refs)
        switch kind {
        case .liveness: service.liveness = probe
        case .readiness: service.readiness = probe
        }
        return true
    }

    /// `ready = "probe"` needs a readiness probe, and a readiness probe needs `ready = "probe"`
    /// (it decides readiness and nothing else: without it, it would have nothing to do).
    mutating func checkProbes(_ service: ServiceConfig, table: TOMLTable, context: String) {
        let ready = table.entries.first { $0.key == "ready" }
        let readiness = table.entries.first { $0.key == "readiness" }
        if service.ready == .probe, readiness == nil, let ready {
            error(ready.value.location, "ready = \"probe\" needs a \(String(context.dropLast())).readiness] table "
                  + "(http, tcp or exec)")
        }
        if let readiness, service.ready != .probe, ready.map({ $0.value.string != nil && $0.value.string != "probe" }) ?? true {
            let now = ready.flatMap { $0.value.string }.map { "ready = \"\($0)\"" } ?? "the default ready = \"started\""
            error(readiness.keyLocation, "a readiness probe decides when an instance is ready: it needs "
                  + "ready = \"probe\" (not \(now))")
        }
    }

    private mutating func probeTable(_ entry: TOMLEntry, context: String, refs: inout ServiceReferences) -> ProbeConfig? {
        guard let table = entry.value.table else {
            error(entry.value.location, "\(entry.key) must be a table like { http = \"http://127.0.0.1:8000/healthz\" }, "
                  + "not \(entry.value.typeNameWithArticle)")
            return nil
        }
        let errorsBefore = diagnostics.count
        var check: ProbeCheck?
        var checkEntry: TOMLEntry?
        var probe = ProbeConfig(check: .tcp(""))
        var intervalEntry: TOMLEntry?
        var timeoutEntry: TOMLEntry?
        for e in table.entries {
            let what = "\(entry.key).\(e.key)"
            switch e.key {
            case "http", "tcp", "exec":
                if let first = checkEntry {
                    error(e.keyLocation, "\(context) has both \(first.key) and \(e.key) (\(first.key) is at "
                          + "\(first.keyLocation.line):\(first.keyLocation.column)); use one")
                    continue
                }
                checkEntry = e
                check = probeCheck(e, what: what, refs: &refs)
            case "interval":
                intervalEntry = e
                if let d = duration(e.value, what) {
                    if d == 0 { error(e.value.location, "\(what) must be more than 0") } else { probe.interval = d }
                }
            case "timeout":
                timeoutEntry = e
                if let d = duration(e.value, what) {
                    if d == 0 { error(e.value.location, "\(what) must be more than 0") } else { probe.timeout = d }
                }
            case "initial-delay":
                if let d = duration(e.value, what) { probe.initialDelay = d }
            case "failures":
                if let n = count(e.value, what) { probe.failures = n }
            case "successes":
                if let n = count(e.value, what) { probe.successes = n }
            default:
                unknownKey(e, in: "in \(context)", known: Self.probeKeys)
            }
        }
        if checkEntry == nil {
            error(entry.keyLocation, "\(context) needs one of http = \"http://…\", tcp = \"HOST:PORT\" or exec = [\"…\"]")
        }
        if let timeoutEntry, probe.timeout > probe.interval {
            let at = intervalEntry.map { " (interval at \($0.value.location.line):\($0.value.location.column))" } ?? " (the default interval)"
            error(timeoutEntry.value.location, "\(entry.key).timeout (\(formatDuration(probe.timeout))) must not be more than "
                  + "its interval (\(formatDuration(probe.interval)))\(at)")
        } else if timeoutEntry == nil, probe.timeout > probe.interval {
            probe.timeout = probe.interval // a short interval without a timeout: the interval bounds it
        }
        guard diagnostics.count == errorsBefore, let check else { return nil }
        probe.check = check
        return probe
    }

    private mutating func probeCheck(_ e: TOMLEntry, what: String, refs: inout ServiceReferences) -> ProbeCheck? {
        switch e.key {
        case "exec":
            guard let argv = stringArray(e.value, what) else { return nil }
            guard let first = argv.first else { error(e.value.location, "\(what) must not be empty"); return nil }
            if first.name.isEmpty { error(first.location, "\(what)[0] (the program) must not be empty"); return nil }
            refs.placeholderStrings += e.value.array ?? []
            return .exec(argv.map(\.name))
        default:
            let expected = e.key == "http" ? "a URL like \"http://127.0.0.1:8000/healthz\"" : "an address like \"127.0.0.1:5432\""
            guard let text = string(e.value, what, expected) else { return nil }
            let check: ProbeCheck = e.key == "http" ? .http(text) : .tcp(text)
            // The target as instance 0 runs it: a bad scheme, host or port is an error now
            // (a bad placeholder is reported by the placeholder check, at its column).
            let placeholdersValid = Placeholders.scan(text).allSatisfy { if case .success = $0.result { return true } else { return false } }
            if placeholdersValid {
                let filled = Placeholders.substitute(text, instance: 0, sockets: [])
                let problem: ConfigValueProblem?
                if e.key == "http" {
                    if case let .failure(p) = HTTPProbeURL.parse(filled, written: text) { problem = p } else { problem = nil }
                } else {
                    if case let .failure(p) = ProbeTargets.parseTCP(filled, written: text) { problem = p } else { problem = nil }
                }
                if let problem { error(e.value.location, problem.message); return nil }
            }
            refs.placeholderStrings.append(e.value)
            return check
        }
    }

    private mutating func count(_ value: TOMLValue, _ what: String) -> Int? {
        guard let n = value.integer else {
            error(value.location, "\(what) must be an integer, not \(value.typeNameWithArticle)")
            return nil
        }
        guard n >= 1, n <= 1_000 else {
            error(value.location, "\(what) must be between 1 and 1000, not \(n)")
            return nil
        }
        return Int(n)
    }
}
