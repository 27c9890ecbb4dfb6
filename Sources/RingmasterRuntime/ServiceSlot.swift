import Glibc
import RingmasterCore
import Systemd

/// A service as the runtime holds it: the live resources of its instances (process, watch,
/// notify socket, timers, cgroup) beside the core's entry for it, which decides everything.
public final class ServiceSlot {
    public let id: ServiceID
    public let name: String
    private unowned let supervisor: Supervisor
    /// the entry as it was when a reload's removal completed (the core has dropped it)
    var removedEntry: StackEntry?
    var processes: [Int: InstanceProcess] = [:]
    /// ProcessMetrics as of one loop iteration (`loop.now`)
    var metricsCache: (at: UInt64, value: ProcessMetrics)?
    public internal(set) var stateChangedRealtime: USec = realtimeNow()
    /// for the D-Bus layer: the service left the config (reload) and its processes are gone
    public var onRemoved: (() -> Void)?

    init(id: ServiceID, name: String, supervisor: Supervisor) {
        self.id = id
        self.name = name
        self.supervisor = supervisor
    }

    /// The core's entry for this service (its last one, once removed).
    public var entry: StackEntry {
        if let e = supervisor.stack.entry(id) { return e }
        if let e = removedEntry { return e }
        preconditionFailure("ServiceSlot \(name) \(id): no entry")
    }

    public var machine: ServiceMachine { entry.machine }

    /// One instance's state, read in place.
    func instanceState(_ index: Int) -> InstanceState? { supervisor.stack.instanceState(id, index) }
    /// removed from the config by a reload (still stopping, or gone)
    public var retiring: Bool { removedEntry != nil || entry.retiring }
    /// the instances it is meant to have (not counting a rolling restart's extra one)
    public var wantedInstances: Int { entry.instancesWanted }

    func process(_ index: Int) -> InstanceProcess {
        if let p = processes[index] { return p }
        let p = InstanceProcess()
        processes[index] = p
        return p
    }

    /// The STATUS= texts the instances sent, by instance.
    public var statusTexts: [Int: String] { processes.compactMapValues(\.status) }

    /// Forgets instance `index` if a scale-down took it away and nothing of it is left
    /// (O(1): a scale-down of 10,000 instances must not scan them all on every exit).
    func dropProcess(_ index: Int, ifAtOrBeyond count: Int) {
        guard index >= count, let p = processes[index], p.pid == nil, p.pgid == nil, p.timers.isEmpty else { return }
        processes[index] = nil
    }
}

final class InstanceProcess {
    var pid: Int32?
    /// the process group to signal; outlives `pid` until leftovers are killed
    var pgid: Int32?
    /// its own cgroup when delegated; outlives `pid` like `pgid`
    var cgroup: InstanceCgroup?
    var child: EventSource?
    var timers: [InstanceTimer: EventSource] = [:]
    var status: String?
    /// the main process that ended last (nil after a spawn that made none), and when it ended
    /// (CLOCK_REALTIME µs): what `ringctl why` matches in the journal (`_PID`) and shows
    var lastPID: Int32?
    var lastExitRealtime: USec?
    /// the instance's `pre-start` process while it runs (`pgid` is its group then)
    var preStartPid: Int32?

    func reset() {
        child = nil
        status = nil
    }
}
