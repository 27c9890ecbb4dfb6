// The per-instance view as ringctl reads it: the Service property InstanceStates
// (a(uussussiuttttts), docs/dbus.md), which the daemon computes only when asked (Get).
import DBus
import RingmasterCore

/// One element of InstanceStates.
struct InstanceRow {
    var instance: UInt64
    var pid: UInt64
    var state: String
    var health: String
    var restarts: UInt64
    var lastExitReason: String
    var lastExitCode: String
    var lastExitStatus: Int32
    var lastPID: UInt64
    /// CLOCK_REALTIME µs, 0 for none
    var lastExitTimestamp: UInt64
    var startTimestamp: UInt64
    var restartTimestamp: UInt64
    var cpuNSec: UInt64
    var memoryBytes: UInt64
    var failureReason: String

    init?(_ value: BusValue) {
        guard let f = value.elements, f.count >= 15 else { return nil } // (a later daemon may add fields)
        func n(_ i: Int) -> UInt64 { f[i].integer.map { UInt64(clamping: $0) } ?? f[i].uint64 ?? 0 }
        func s(_ i: Int) -> String { f[i].string ?? "" }
        instance = n(0); pid = n(1); state = s(2); health = s(3); restarts = n(4)
        lastExitReason = s(5); lastExitCode = s(6); lastExitStatus = Int32(clamping: f[7].integer ?? 0)
        lastPID = n(8); lastExitTimestamp = n(9); startTimestamp = n(10); restartTimestamp = n(11)
        cpuNSec = n(12); memoryBytes = n(13); failureReason = s(14)
    }

    /// µs the current process has run, as of `now` (realtime µs)
    func uptime(now: UInt64) -> UInt64? {
        pid != 0 && startTimestamp > 0 && now >= startTimestamp ? now - startTimestamp : nil
    }

    /// "signal (killed by SIGKILL)", "" before any exit
    var lastExit: String { exitSummary(reason: lastExitReason, code: lastExitCode, status: lastExitStatus) }

    static func parse(_ value: BusValue?) -> [InstanceRow] { (value?.elements ?? []).compactMap(InstanceRow.init) }

    /// A `Properties.Get` of InstanceStates on a service's object.
    static func get(path: String) -> WireMessage {
        .methodCall(destination: RingmasterBus.name, path: path, interface: "org.freedesktop.DBus.Properties",
                    member: "Get", [.string(RingmasterBus.serviceInterface), .string("InstanceStates")])
    }
}
