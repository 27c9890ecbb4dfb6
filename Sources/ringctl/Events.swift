// `ringctl events`: follows the Manager's signals, one line each, until interrupted.
import DBus
import Glibc
import RingmasterCore

struct Events: Subcommand {
    static let spec = CommandSpec(
        "events",
        abstract: "Follow ringmasterd's events: service states, processes started and exited, reloads.",
        discussion: """
            One line per event, as it happens: the ServiceStateChanged, ProcessStarted, \
            ProcessExited and Reloaded signals of io.ringmaster.Ringmaster1, and ringmasterd \
            itself appearing on or leaving the bus. Runs until interrupted (or --count events).
            """,
        options: [.init("json", help: "One JSON object per line."),
                  .init("count", short: "n", value: "count", help: "Exit after this many events.")])

    var json: Bool
    var count: Int?

    init(_ a: ParsedArguments) throws(UsageError) {
        json = a.flag("json")
        if let text = a.values["count"] {
            guard let n = Int(text), n >= 1 else { throw UsageError("--count must be a number, at least 1 (not \"\(text)\")") }
            count = n
        }
    }

    func run() throws {
        var seen = 0
        let json = self.json
        func show(_ event: Event) {
            output((json ? event.json.text : event.line) + "\n")
            seen += 1
        }
        try withClient { client in
            // Matches first, then the check: no event between the two is lost.
            let bus = client.bus
            try bus.addMatch("type='signal',sender='\(RingmasterBus.name)',path='\(RingmasterBus.managerPath)',"
                             + "interface='\(RingmasterBus.managerInterface)'")
            try bus.addMatch("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             + "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(RingmasterBus.name)'")
            guard try bus.hasOwner(RingmasterBus.name) else {
                throw BusError(BusError.nameHasNoOwner, "")
            }
            while count.map({ seen < $0 }) ?? true {
                let message = try bus.nextSignal()
                if message.interface == RingmasterBus.managerInterface {
                    if let event = Event(message) { show(event) }
                } else if message.member == "NameOwnerChanged", message.body.count == 3,
                          message.body[0].string == RingmasterBus.name, let new = message.body[2].string {
                    show(Event(time: Format.nowUSec(), kind: new.isEmpty ? .daemonStopped : .daemonStarted))
                }
            }
        }
    }
}

/// One event, from a signal.
struct Event {
    enum Kind {
        case stateChanged(service: String, state: String)
        case processStarted(service: String, instance: UInt32, pid: UInt32)
        case processExited(service: String, instance: UInt32, pid: UInt32, code: String, status: Int32)
        case reloaded(ok: Bool, message: String)
        case daemonStarted
        case daemonStopped
    }

    var time: UInt64
    var kind: Kind

    init(time: UInt64, kind: Kind) {
        self.time = time
        self.kind = kind
    }

    init?(_ message: WireMessage) {
        let values = message.body
        func s(_ i: Int) -> String? { i < values.count ? values[i].string : nil }
        func u(_ i: Int) -> UInt32? { i < values.count ? values[i].integer.flatMap { UInt32(exactly: $0) } : nil }
        time = Format.nowUSec()
        switch message.member {
        case "ServiceStateChanged":
            guard let name = s(0), let state = s(1) else { return nil }
            kind = .stateChanged(service: name, state: state)
        case "ProcessStarted":
            guard let name = s(0), let instance = u(1), let pid = u(2) else { return nil }
            kind = .processStarted(service: name, instance: instance, pid: pid)
        case "ProcessExited":
            guard let name = s(0), let instance = u(1), let pid = u(2), let code = s(3), values.count > 4,
                  let status = values[4].integer.flatMap({ Int32(exactly: $0) }) else { return nil }
            kind = .processExited(service: name, instance: instance, pid: pid, code: code, status: status)
        case "Reloaded":
            guard values.count == 2, let ok = values[0].bool, let text = s(1) else { return nil }
            kind = .reloaded(ok: ok, message: text)
        default:
            return nil
        }
    }

    var line: String {
        let prefix = Format.timestamp(usec: time) + " "
        switch kind {
        case let .stateChanged(name, state):
            return prefix + "\(name): \(Colour.state(state, state: state))"
        case let .processStarted(name, instance, pid):
            return prefix + "\(name).\(instance): started, pid \(pid)"
        case let .processExited(name, instance, pid, code, status):
            let how: String
            switch code {
            case "exited": how = "exited with status \(status)"
            case "killed": how = "killed by \(Signals.description(of: status))"
            case "dumped": how = "dumped core on \(Signals.description(of: status))"
            default: how = "ended"
            }
            return prefix + "\(name).\(instance): pid \(pid) \(how)"
        case let .reloaded(ok, message):
            let text = message.split(separator: "\n").joined(separator: "; ")
            return prefix + (ok ? "reloaded" : "reload failed") + (text.isEmpty ? "" : ": \(text)")
        case .daemonStarted:
            return prefix + "ringmasterd appeared on the bus"
        case .daemonStopped:
            return prefix + "ringmasterd left the bus"
        }
    }

    var json: JSON {
        var fields: [(String, JSON)] = [("time_usec", .uint(time))]
        switch kind {
        case let .stateChanged(name, state):
            fields += [("event", .string("ServiceStateChanged")), ("name", .string(name)), ("state", .string(state))]
        case let .processStarted(name, instance, pid):
            fields += [("event", .string("ProcessStarted")), ("name", .string(name)),
                       ("instance", .uint(UInt64(instance))), ("pid", .uint(UInt64(pid)))]
        case let .processExited(name, instance, pid, code, status):
            fields += [("event", .string("ProcessExited")), ("name", .string(name)),
                       ("instance", .uint(UInt64(instance))), ("pid", .uint(UInt64(pid))),
                       ("code", .string(code)), ("status", .int(Int64(status)))]
        case let .reloaded(ok, message):
            fields += [("event", .string("Reloaded")), ("ok", .bool(ok)), ("message", .string(message))]
        case .daemonStarted:
            fields += [("event", .string("DaemonStarted"))]
        case .daemonStopped:
            fields += [("event", .string("DaemonStopped"))]
        }
        return .object(fields)
    }
}
