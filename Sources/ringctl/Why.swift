// `ringctl why NAME[.N]`: the story of an instance's last exit on one screen — its reason and
// status, when, the limits it ran under, its restarts and backoff (the Service properties and
// InstanceStates), and its last lines of output, read from the journal by its `_PID` (the
// daemon keeps the pid that ended last, not the lines).
import DBus
import Glibc
import RingmasterCore

struct Why: Subcommand {
    static let spec = CommandSpec(
        "why",
        abstract: "Tell why an instance last ended: reason, status, limits, restarts, its last output.",
        discussion: """
            NAME.N names instance N of service NAME; NAME alone, the instance that ended last. \
            The output lines are those the ended process wrote (stdout and stderr), from the \
            journal, matched by its pid. Exit status: 0, or 4 if there is no such service or instance.
            """,
        arguments: [.init("instance", help: "NAME.N (an instance) or NAME (its service).")],
        options: [.init("lines", short: "n", value: "n", help: "Show at most N lines of output (default: 20, at most 1000).")])

    var target: String
    var lines = 20

    init(_ a: ParsedArguments) throws(UsageError) {
        target = a.one("instance") ?? ""
        if let text = a.values["lines"] {
            guard let n = Int(text), (0...1000).contains(n) else {
                throw UsageError("-n must be a number from 0 to 1000 (not \"\(boundedEcho(text, limit: 40))\")")
            }
            lines = n
        }
    }

    func run() throws {
        try withClient { client in
            let services = Status.namesAndPaths(try client.callManager("ListServices"))
            guard let (name, path, wanted) = Self.resolve(target, in: services) else {
                throw Failure("no service named \"\(boundedEcho(target, limit: 200))\"", code: ExitCodes.noSuchService)
            }
            let replies = try client.bus.callAll([RingmasterClient.getAll(path: path, interface: RingmasterBus.serviceInterface),
                                                  InstanceRow.get(path: path)], timeout: RingmasterClient.timeout)
            let properties = try replies[0].get().body.first?.stringKeyedDictionary ?? [:]
            let instances = InstanceRow.parse(try replies[1].get().body.first)
            let instance: InstanceRow
            var chosen = ""
            if let wanted {
                guard let row = instances.first(where: { $0.instance == wanted }) else {
                    let range = instances.isEmpty ? "none" : instances.count == 1 ? "0" : "0…\(instances.count - 1)"
                    throw Failure("\(name) has no instance \(wanted) (its instances: \(range))", code: ExitCodes.noSuchService)
                }
                instance = row
            } else {
                guard let row = instances.max(by: { $0.lastExitTimestamp < $1.lastExitTimestamp }) else {
                    throw Failure("\(name) has no instances")
                }
                instance = row
                if instances.count > 1 {
                    chosen = row.lastExitTimestamp > 0 ? " (of \(instances.count) instances, the last to end)"
                                                        : " (of \(instances.count) instances; none has ended)"
                }
            }
            output(story(name, instance, chosen: chosen, properties: properties, now: Format.nowUSec()))
        }
    }

    /// The service and instance `target` names: a service name (names may hold dots), or
    /// NAME.N for an instance of a service named NAME.
    static func resolve(_ target: String, in services: [(name: String, path: String)]) -> (String, String, UInt64?)? {
        if let s = services.first(where: { $0.name == target }) { return (s.name, s.path, nil) }
        guard let dot = target.lastIndex(of: "."), let n = UInt64(target[target.index(after: dot)...]),
              let s = services.first(where: { $0.name == target[..<dot] }) else { return nil }
        return (s.name, s.path, n)
    }

    func story(_ name: String, _ i: InstanceRow, chosen: String, properties: [String: BusValue], now: UInt64) -> String {
        let label = "\(name).\(i.instance)"
        var out = Colour.bold(label) + chosen + ": " + Colour.state(i.state, state: i.state)
        if i.pid != 0 {
            out += ", pid \(i.pid)"
            if let up = i.uptime(now: now) { out += ", up \(Format.duration(usec: up))" }
        }
        out += "; \(i.restarts) restart\(i.restarts == 1 ? "" : "s")"
        if !i.health.isEmpty { out += "; health \(i.health)" }
        out += "\n"

        if i.lastExitTimestamp == 0 && i.lastExit.isEmpty {
            out += i.pid != 0 ? "It has not ended since ringmasterd started it.\n"
                               : "No process of it has ended since ringmasterd started.\n"
        } else {
            out += "Last exit:    \(i.lastExit.isEmpty ? "?" : i.lastExit)"
            if i.lastExitTimestamp > 0 {
                out += " at \(Format.timestamp(usec: i.lastExitTimestamp))"
                if now >= i.lastExitTimestamp { out += ", \(Format.duration(usec: now - i.lastExitTimestamp)) ago" }
            }
            out += i.lastPID != 0 ? " (pid \(i.lastPID))\n" : " (no process was started)\n"
        }
        let limits = (properties["Limits"]?.elements ?? []).compactMap { entry -> String? in
            guard let f = entry.elements, f.count == 2, let k = f[0].string, let v = f[1].string else { return nil }
            return "\(k) = \(v)"
        }
        out += "Limits:       " + (limits.isEmpty ? "none" : limits.joined(separator: ", ")) + "\n"
        if i.restartTimestamp > 0 {
            let due = i.restartTimestamp > now ? "in \(Format.duration(usec: i.restartTimestamp - now))" : "now"
            out += "Next restart: \(due) (backoff)\n"
        }
        if !i.failureReason.isEmpty {
            out += Colour.state("Failed:       \(i.failureReason)", state: "failed") + "\n"
        } else if i.state == "failed", let reason = properties["FailureReason"]?.string, !reason.isEmpty {
            out += Colour.state("Failed:       \(reason)", state: "failed") + "\n"
        }
        out += outputSection(name, i)
        return out
    }

    /// The ended process's last lines in the journal; for a spawn that made no process,
    /// ringmasterd's own line about it.
    func outputSection(_ name: String, _ i: InstanceRow) -> String {
        guard lines > 0, i.lastExitTimestamp > 0 || !i.lastExit.isEmpty else { return "" }
        let matches: [String]
        let heading: String
        if i.lastPID != 0 {
            matches = ["_PID=\(i.lastPID)", "SYSLOG_IDENTIFIER=\(name)"]
            heading = "Output of pid \(i.lastPID)"
        } else {
            matches = ["SYSLOG_IDENTIFIER=ringmasterd", "RINGMASTER_SERVICE=\(name)", "RINGMASTER_INSTANCE=\(i.instance)",
                       "RINGMASTER_EVENT=spawn-failed"]
            heading = "ringmasterd about the failed spawn"
        }
        switch JournalQuery.last(lines, matching: matches) {
        case let .failure(f):
            return "\(heading): cannot read the journal: \(f.message)\n"
        case let .success(entries) where entries.isEmpty:
            return "\(heading): no lines in the journal\n"
        case let .success(entries):
            var out = "\(heading), last \(entries.count) line\(entries.count == 1 ? "" : "s") (journal):\n"
            for e in entries {
                let time = Format.timestamp(usec: e.realtime).split(separator: " ").last.map(String.init) ?? ""
                let level = e.priority <= 3 ? "err " : e.priority == 4 ? "warn" : "    "
                let line = "  \(time) \(level) \(e.message)"
                out += (e.priority <= 3 ? Colour.state(line, state: "failed") : line) + "\n"
            }
            return out
        }
    }
}
