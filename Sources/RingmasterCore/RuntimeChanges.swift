// Runtime changes that survive a restart of ringmasterd (SPEC "Runtime changes survive a
// restart of ringmasterd"): what `ringctl scale|stop|start` changed of a service — its
// instance count, whether it is wanted up — kept per service together with a fingerprint of
// the service's config as the files said. The Stack decides what there is to keep and what a
// restarted daemon restores (a service whose config changed meanwhile gets nothing back);
// the runtime only reads and writes the file (Daemon+RuntimeChanges.swift). Pure.

/// One service's runtime changes: what differs from its config.
public struct RuntimeChange: Equatable, Sendable {
    public var service: String
    /// `ServiceConfig.fingerprint` of the service's config when the change was made
    public var fingerprint: String
    /// scaled to this many instances (nil: the config's count)
    public var instances: Int?
    /// started (`true`) or stopped (`false`) against its `autostart` (nil: as the config says)
    public var wanted: Bool?

    public init(service: String, fingerprint: String, instances: Int? = nil, wanted: Bool? = nil) {
        self.service = service; self.fingerprint = fingerprint; self.instances = instances; self.wanted = wanted
    }
}

public enum RuntimeChangesFile {
    static let header = "# ringmasterd runtime changes (ringctl scale/start/stop), kept until a reload changes the service"
    static let version = "ringmaster-runtime-changes 1"

    /// The file's text: a header, then one line per service:
    /// `service FINGERPRINT INSTANCES|- up|down|- NAME`.
    public static func format(_ changes: [RuntimeChange]) -> String {
        var out = header + "\n" + version + "\n"
        for c in changes {
            let wanted = c.wanted.map { $0 ? "up" : "down" } ?? "-"
            out += "service \(c.fingerprint) \(c.instances.map(String.init) ?? "-") \(wanted) \(c.service)\n"
        }
        return out
    }

    /// The changes in `text`; lines that are not understood are skipped (and counted). A file
    /// of another version gives nothing.
    public static func parse(_ text: String) -> (changes: [RuntimeChange], skipped: Int) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.hasPrefix("#") }
        guard lines.first == Substring(version) else { return ([], lines.count) }
        lines.removeFirst()
        var changes: [RuntimeChange] = []
        var skipped = 0
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 5, fields[0] == "service", !fields[1].isEmpty, !fields[4].isEmpty else { skipped += 1; continue }
            var change = RuntimeChange(service: String(fields[4]), fingerprint: String(fields[1]))
            switch fields[2] {
            case "-": break
            default:
                guard let n = Int(fields[2]), n >= 0 else { skipped += 1; continue }
                change.instances = n
            }
            switch fields[3] {
            case "-": break
            case "up": change.wanted = true
            case "down": change.wanted = false
            default: skipped += 1; continue
            }
            changes.append(change)
        }
        return (changes, skipped)
    }
}

public extension ServiceConfig {
    /// A stable digest of everything the config files say about the service (FNV-1a, 64 bits,
    /// over its full description): equal across restarts of the same ringmasterd for the same
    /// config, different after any change of the service's table (or of its env files).
    var fingerprint: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in String(reflecting: self).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension Stack {
    /// Every service's runtime changes now, without fingerprints (cheap: compared after each
    /// change to decide whether the file needs writing). Nothing while shutting down: a
    /// shutdown is not a change a user made.
    public func runtimeChangeSummary() -> [String: RuntimeChange]? {
        guard !shuttingDown else { return nil }
        var out: [String: RuntimeChange] = [:]
        for e in entries where !e.retiring {
            var change = RuntimeChange(service: e.name, fingerprint: "")
            if e.instancesWanted != e.configured.instances { change.instances = e.instancesWanted }
            if e.machine.wanted != e.configured.autostart { change.wanted = e.machine.wanted }
            if change.instances != nil || change.wanted != nil { out[e.name] = change }
        }
        return out
    }

    /// The runtime changes to keep, in config order, each with its service's fingerprint.
    public func runtimeChanges() -> [RuntimeChange] {
        guard let summary = runtimeChangeSummary() else { return [] }
        return services.compactMap { e in
            guard var change = summary[e.name] else { return nil }
            change.fingerprint = e.configured.fingerprint
            return change
        }
    }

    /// Before `boot`: brings back the runtime changes of a previous daemon, for each service
    /// whose config is the same as when the change was made; the others are dropped (the
    /// config changed meanwhile: as a reload would have, it resets them). Returns what was
    /// done, for the log.
    public mutating func restore(_ changes: [RuntimeChange]) -> [StackNote] {
        var notes: [StackNote] = []
        var counts = instanceCounts()
        for change in changes {
            guard let id = current[change.service], let e = entry(id) else {
                notes.append(StackNote(.info, "runtime-changes", "\(change.service): not in the config any more; "
                                       + "its runtime changes are dropped"))
                continue
            }
            guard change.fingerprint == e.configured.fingerprint else {
                notes.append(StackNote(.info, "runtime-changes", "\(e.name): its config changed; its runtime changes "
                                       + "(\(Self.describe(change))) are dropped"))
                continue
            }
            var applied: [String] = []
            if let n = change.instances, n != e.machine.wantedInstances {
                counts[id] = n
                if ServiceConfig.instancesProblem(Int64(n), maximum: limits.maximumInstances) != nil
                    || (try? checkCapacity(counts, for: "")) == nil {
                    counts[id] = e.machine.wantedInstances
                    notes.append(StackNote(.warning, "runtime-changes", "\(e.name): not restoring its scale to \(n): "
                                           + "beyond what this daemon allows"))
                } else if let p = position[id] {
                    _ = entries[p].machine.setInstanceCount(n)
                    applied.append("scaled to \(n)")
                }
            }
            if let wanted = change.wanted, let p = position[id], entries[p].machine.wanted != wanted {
                entries[p].machine.wanted = wanted
                setAwaiting(id, wanted)
                applied.append(wanted ? "started" : "stopped")
            }
            if !applied.isEmpty {
                notes.append(StackNote(.info, "runtime-changes", "\(e.name): restored from before the restart of ringmasterd: "
                                       + applied.joined(separator: ", ")))
            }
        }
        return notes
    }

    static func describe(_ change: RuntimeChange) -> String {
        var parts: [String] = []
        if let n = change.instances { parts.append("scaled to \(n)") }
        if let w = change.wanted { parts.append(w ? "started" : "stopped") }
        return parts.joined(separator: ", ")
    }
}
