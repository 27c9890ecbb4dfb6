// `ringctl status [NAME…] [--json] [--instances]`: a table like `systemctl list-units`, from
// ListServices and every service's properties (ObjectManager.GetManagedObjects), asked in one
// round trip; with --instances, a second one for each service's InstanceStates (Get only).
import DBus
import Glibc
import RingmasterCore

struct Status: Subcommand {
    static let spec = CommandSpec(
        "status",
        abstract: "Show the services: state, instances running/wanted, pids, uptime, CPU, memory, restarts.",
        discussion: """
            Exit status: 0 if ringmasterd runs (and every named service is running), 3 if \
            ringmasterd or a named service is not running, 4 if a named service does not exist.
            """,
        arguments: [.init("names", .any, help: "Only these services (default: all).")],
        options: [.init("json", help: "Print a JSON array of objects instead of the table."),
                  .init("instances", help: """
                      Also show one row per instance: pid, state, health, uptime, CPU, memory, restarts, \
                      last exit (with --json: an "instances" array in each service object, and the wanted \
                      count as "instances_wanted").
                      """)])

    var names: [String]
    var json: Bool
    var instances: Bool

    init(_ a: ParsedArguments) {
        names = a.all("names")
        json = a.flag("json")
        instances = a.flag("instances")
    }

    /// One service's properties, as the table and the JSON show them.
    struct Row {
        var name: String
        var properties: [String: BusValue]
        /// Realtime µs when the replies arrived: one clock for every row.
        var now: UInt64

        /// with --instances: InstanceStates
        var instances: [InstanceRow]? = nil

        func string(_ key: String) -> String { properties[key]?.string ?? "" }
        func number(_ key: String) -> UInt64 { properties[key]?.uint64 ?? 0 }
        var state: String { string("State") }
        /// "signal (killed by SIGKILL)", "" before any exit
        var lastExit: String {
            exitSummary(reason: string("LastExitReason"), code: string("LastExitCode"),
                        status: Int32(clamping: properties["LastExitStatus"]?.integer ?? 0))
        }
        var pids: [UInt64] { (properties["PIDs"]?.elements ?? []).compactMap(\.uint64) }
        /// µs in the current state, while running
        var uptime: UInt64? {
            let since = number("StateChangeTimestamp")
            return state == "running" && since > 0 && now >= since ? now - since : nil
        }
    }

    func run() throws {
        var code: Int32 = 0
        try withClient(notRunning: ExitCodes.notRunning) { client in
            // One write, one round trip: the order (ListServices), every service's properties
            // (GetManagedObjects), and the manager's for the header line.
            let header = names.isEmpty && !json
            var calls = [RingmasterClient.managerCall("ListServices"),
                         .methodCall(destination: RingmasterBus.name, path: RingmasterBus.managerPath,
                                     interface: "org.freedesktop.DBus.ObjectManager", member: "GetManagedObjects")]
            if header {
                calls.append(RingmasterClient.getAll(path: RingmasterBus.managerPath, interface: RingmasterBus.managerInterface))
            }
            let replies = try client.bus.callAll(calls, timeout: RingmasterClient.timeout)
            let now = Format.nowUSec()
            let services = Self.namesAndPaths(try replies[0].get())
            let objects = Self.serviceObjects(try replies[1].get())
            var selected: [(name: String, path: String)] = []
            if names.isEmpty {
                selected = services
            } else {
                for name in names {
                    if let s = services.first(where: { $0.name == name }) {
                        selected.append(s)
                    } else {
                        printError("no service named \"\(name)\"")
                        code = ExitCodes.noSuchService
                    }
                }
            }
            // A service missing from the objects was removed by a reload meanwhile.
            var rows = selected.compactMap { s in objects[s.path].map { Row(name: s.name, properties: $0, now: now) } }
            if instances { try Self.addInstances(to: &rows, paths: selected, client: client) }
            if json {
                output(JSON.array(rows.map(Status.json)).text + "\n")
            } else {
                if header { output(Self.header(try replies[2].get(), count: rows.count)) }
                // Only unknown names asked for: the error lines say it all, no empty table.
                if !rows.isEmpty || names.isEmpty { output(table(rows)) }
                if instances, !rows.isEmpty { output("\n" + Self.instanceTable(rows)) }
            }
            if code == 0, !names.isEmpty, rows.contains(where: { $0.state != "running" }) {
                code = ExitCodes.notRunning
            }
        }
        if code != 0 { throw ExitCode(code) }
    }

    /// InstanceStates of each row's service, asked for in one round trip (the daemon reads
    /// them only on such a Get). A service a reload removed meanwhile keeps no rows.
    static func addInstances(to rows: inout [Row], paths: [(name: String, path: String)], client: RingmasterClient) throws {
        let byName = Dictionary(paths.map { ($0.name, $0.path) }, uniquingKeysWith: { a, _ in a })
        let asked = rows.compactMap { byName[$0.name] }
        guard asked.count == rows.count, !rows.isEmpty else { return }
        let replies = try client.bus.callAll(asked.map(InstanceRow.get), timeout: RingmasterClient.timeout)
        for i in rows.indices {
            do {
                rows[i].instances = InstanceRow.parse(try replies[i].get().body.first)
            } catch let e as BusError where e.name == BusError.unknownObject || e.name == RingmasterBus.ErrorName.noSuchService {
                rows[i].instances = [] // removed by a reload since the first round trip
            } catch let e as BusError where e.name == "org.freedesktop.DBus.Error.UnknownProperty" {
                throw Failure("this ringmasterd has no per-instance view (InstanceStates): it is older than this ringctl")
            }
        }
    }

    /// A ListServices reply (a(ssuuo)): every service's name and object path, in config
    /// order (the rest of each entry is in its properties too).
    static func namesAndPaths(_ reply: WireMessage) -> [(name: String, path: String)] {
        (reply.body.first?.elements ?? []).compactMap { entry in
            guard let f = entry.elements, f.count == 5, let name = f[0].string, let path = f[4].string else { return nil }
            return (name, path)
        }
    }

    /// The Service interface's properties of every object in a GetManagedObjects reply
    /// (a{oa{sa{sv}}}), by object path.
    static func serviceObjects(_ reply: WireMessage) -> [String: [String: BusValue]] {
        var out: [String: [String: BusValue]] = [:]
        for entry in reply.body.first?.elements ?? [] {
            guard case let .dictEntry(path, interfaces) = entry, let path = path.string else { continue }
            for item in interfaces.elements ?? [] {
                guard case let .dictEntry(name, properties) = item, name.string == RingmasterBus.serviceInterface,
                      let dict = properties.stringKeyedDictionary else { continue }
                out[path] = dict
            }
        }
        return out
    }

    /// "ringmasterd 0.1.0 running, 2 services from /home/u/.config/ringmaster/ringmaster.toml"
    private static func header(_ reply: WireMessage, count: Int) -> String {
        let manager = reply.body.first?.stringKeyedDictionary ?? [:]
        let version = manager["Version"]?.string ?? "?"
        let state = manager["State"]?.string ?? "?"
        let files = (manager["ConfigFiles"]?.elements ?? []).compactMap(\.string)
        var line = "ringmasterd \(version) \(Colour.state(state, state: state)), \(count) service\(count == 1 ? "" : "s")"
        if let first = files.first {
            line += " from \(first)" + (files.count > 1 ? " (+\(files.count - 1) conf.d)" : "")
        }
        return line + "\n"
    }

    private func table(_ rows: [Row]) -> String {
        var t = Table(header: ["NAME", "STATE", "INSTANCES", "PIDS", "UPTIME", "CPU", "MEMORY", "RESTARTS", "LAST EXIT"])
        var notes: [String] = []
        for row in rows {
            let pids = row.pids.map(String.init)
            let shown = pids.count > 6 ? pids.prefix(5).joined(separator: ",") + ",+\(pids.count - 5)" : pids.joined(separator: ",")
            t.rows.append([
                row.name, row.state, "\(row.number("Running"))/\(row.number("Instances"))",
                shown.isEmpty ? "-" : shown,
                row.uptime.map { Format.duration(usec: $0) } ?? "-",
                Format.duration(usec: row.number("CPUUsageNSec") / 1_000),
                Format.bytes(row.number("MemoryCurrent")),
                String(row.number("Restarts")),
                row.lastExit.isEmpty ? "-" : row.lastExit,
            ])
            let reason = row.string("FailureReason")
            if row.state == "failed", !reason.isEmpty { notes.append("\(row.name): \(reason)") }
        }
        var out = t.render { r, c, padded in c == 1 ? Colour.state(padded, state: rows[r].state) : padded }
        for note in notes { out += Colour.state(note, state: "failed") + "\n" }
        return out
    }

    /// One row per instance of every service: "web.2  4711  running  …".
    static func instanceTable(_ rows: [Row]) -> String {
        var t = Table(header: ["INSTANCE", "PID", "STATE", "HEALTH", "UPTIME", "CPU", "MEMORY", "RESTARTS", "LAST EXIT"])
        var states: [String] = []
        for row in rows {
            for i in row.instances ?? [] {
                t.rows.append([
                    "\(row.name).\(i.instance)", i.pid == 0 ? "-" : String(i.pid), i.state,
                    i.health.isEmpty ? "-" : i.health,
                    i.uptime(now: row.now).map { Format.duration(usec: $0) } ?? "-",
                    i.pid == 0 ? "-" : Format.duration(usec: i.cpuNSec / 1_000),
                    i.pid == 0 ? "-" : Format.bytes(i.memoryBytes),
                    String(i.restarts),
                    i.lastExit.isEmpty ? "-" : i.lastExit,
                ])
                states.append(i.state)
            }
        }
        return t.render { r, c, padded in c == 2 ? Colour.state(padded, state: states[r]) : padded }
    }

    static func json(_ i: InstanceRow, now: UInt64) -> JSON {
        func text(_ s: String) -> JSON { s.isEmpty ? .null : .string(s) }
        let exited = !i.lastExitCode.isEmpty
        return .object([
            ("instance", .uint(i.instance)),
            ("pid", i.pid == 0 ? .null : .uint(i.pid)),
            ("state", .string(i.state)),
            ("health", text(i.health)),
            ("restarts", .uint(i.restarts)),
            ("last_exit_reason", text(i.lastExitReason)),
            ("last_exit_code", text(i.lastExitCode)),
            ("last_exit_status", exited ? .int(Int64(i.lastExitStatus)) : .null),
            ("last_pid", i.lastPID == 0 ? .null : .uint(i.lastPID)),
            ("last_exit_timestamp", i.lastExitTimestamp == 0 ? .null : .uint(i.lastExitTimestamp)),
            ("uptime_usec", i.uptime(now: now).map { .uint($0) } ?? .null),
            ("cpu_usage_nsec", .uint(i.cpuNSec)),
            ("memory_current", .uint(i.memoryBytes)),
            ("next_restart_timestamp", i.restartTimestamp == 0 ? .null : .uint(i.restartTimestamp)),
            ("failure_reason", text(i.failureReason)),
        ])
    }

    static func json(_ row: Row) -> JSON {
        let exitCode = row.string("LastExitCode")
        var fields: [(String, JSON)] = [
            ("name", .string(row.name)),
            ("state", .string(row.state)),
            ("instances", .uint(row.number("Instances"))),
            ("running", .uint(row.number("Running"))),
            ("pids", .array(row.pids.map { .uint($0) })),
            ("uptime_usec", row.uptime.map { .uint($0) } ?? .null),
            ("cpu_usage_nsec", .uint(row.number("CPUUsageNSec"))),
            ("memory_current", .uint(row.number("MemoryCurrent"))),
            ("restarts", .uint(row.number("Restarts"))),
            ("last_exit_code", exitCode.isEmpty ? .null : .string(exitCode)),
            ("last_exit_status", exitCode.isEmpty ? .null : .int(row.properties["LastExitStatus"]?.integer ?? 0)),
            ("last_exit_reason", row.string("LastExitReason").isEmpty ? .null : .string(row.string("LastExitReason"))),
            ("state_change_timestamp", .uint(row.number("StateChangeTimestamp"))),
            ("failure_reason", row.string("FailureReason").isEmpty ? .null : .string(row.string("FailureReason"))),
            ("status_text", row.string("StatusText").isEmpty ? .null : .string(row.string("StatusText"))),
        ]
        // SPEC: with --instances, "instances" is the array of instance objects; the wanted
        // count it holds otherwise moves to "instances_wanted".
        if let instances = row.instances, let i = fields.firstIndex(where: { $0.0 == "instances" }) {
            fields[i] = ("instances_wanted", fields[i].1)
            fields.append(("instances", .array(instances.map { json($0, now: row.now) })))
        }
        return .object(fields)
    }
}
