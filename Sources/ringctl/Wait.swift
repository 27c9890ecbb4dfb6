// Commands that wait for their result (SPEC "Commands wait for their result"): the
// …AndWait methods reply once the change is done, or with JobFailed and one line saying
// what failed and why. Meanwhile, on a terminal, one line per instance started, replaced or
// stopped, from the Manager's signals (nothing when stdout is not a terminal). Ctrl-C stops
// the waiting, not the change. `--no-block` uses the plain methods: back once accepted.
import DBus
import Glibc
import RingmasterCore

enum Wait {
    static let noBlock = CommandSpec.Option(
        "no-block", help: "Return once ringmasterd accepted the request; do not wait for the result.")

    /// Progress lines on a terminal only.
    static let showsProgress = isatty(1) == 1

    /// Calls `calls` (…AndWait methods, one per service) at once and waits for every reply,
    /// printing progress for `services`; every failure is printed (one line each) and the
    /// first one's exit code thrown, as `forEachService` does.
    static func run(_ client: RingmasterClient, _ calls: [(service: String?, call: WireMessage)],
                    stopping: Bool = false,
                    onError: (BusError) -> Bool = { _ in false }) throws {
        let bus = client.bus
        var progress = Progress(services: Set(calls.compactMap(\.service)), stopping: stopping)
        if showsProgress {
            try bus.addMatch("type='signal',sender='\(RingmasterBus.name)',path='\(RingmasterBus.managerPath)',"
                             + "interface='\(RingmasterBus.managerInterface)'")
        }
        let results = try bus.callAllWatching(calls.map(\.call)) { message in
            if showsProgress, let event = Event(message), let line = progress.line(for: event) { output(line + "\n") }
        }
        var code: Int32 = 0
        for result in results {
            guard case let .failure(error) = result else { continue }
            if let e = error as? BusError, e.isNoOwner { throw e }
            if let e = error as? BusError, onError(e) {
                if code == 0 { code = ExitCodes.failure }
                continue
            }
            let failure = describe(error)
            printError(failure.message)
            if code == 0 { code = failure.code }
        }
        if code != 0 { throw ExitCode(code) }
    }

    static func call(_ member: String, _ arguments: [BusValue]) -> WireMessage {
        RingmasterClient.managerCall(member, arguments)
    }
}

/// Turns the Manager's process signals into one line per instance started, replaced or stopped.
struct Progress {
    let services: Set<String>
    /// a stop or scale: exits are the progress (else: starts and replacements)
    let stopping: Bool
    /// the pid each instance last ended with, until its replacement starts
    var ended: [String: UInt32] = [:]

    init(services: Set<String>, stopping: Bool) {
        self.services = services
        self.stopping = stopping
    }

    mutating func line(for event: Event) -> String? {
        switch event.kind {
        case let .processStarted(name, instance, pid):
            guard services.isEmpty || services.contains(name) else { return nil }
            let key = "\(name).\(instance)"
            if let old = ended.removeValue(forKey: key) { return "\(key): replaced pid \(old) with pid \(pid)" }
            return "\(key): started, pid \(pid)"
        case let .processExited(name, instance, pid, _, _):
            guard services.isEmpty || services.contains(name) else { return nil }
            let key = "\(name).\(instance)"
            ended[key] = pid
            return stopping ? "\(key): pid \(pid) ended" : nil
        default:
            return nil
        }
    }
}
