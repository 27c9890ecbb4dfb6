import Glibc
import RingmasterCore
import Systemd

/// A service as the supervisor holds it: the pure machine plus the live resources of each
/// instance (process, watch, notify socket, timers).
public final class ServiceSlot {
    public internal(set) var machine: ServiceMachine
    /// wanted up, waiting for its dependencies to be ready
    var pendingStart = false
    /// wanted down (shutdown), waiting for its dependents to be down
    var pendingStop = false
    /// removed from the config by a reload, still stopping
    var retiring = false
    var processes: [Int: InstanceProcess] = [:]
    var loggedState: ServiceState = .stopped
    /// ProcessMetrics as of one loop iteration (`loop.now`)
    var metricsCache: (at: UInt64, value: ProcessMetrics)?
    public internal(set) var stateChangedRealtime: USec = realtimeNow()
    /// for the D-Bus layer: the service left the config (reload) and its processes are gone
    public var onRemoved: (() -> Void)?

    init(config: ServiceConfig) { machine = ServiceMachine(config: config) }

    public var name: String { machine.name }

    func process(_ index: Int) -> InstanceProcess {
        if let p = processes[index] { return p }
        let p = InstanceProcess()
        processes[index] = p
        return p
    }

    /// The STATUS= texts the instances sent, by instance.
    public var statusTexts: [Int: String] { processes.compactMapValues(\.status) }

    func dropProcesses(beyond count: Int) {
        for (i, p) in processes where i >= count && p.pid == nil && p.pgid == nil {
            processes[i] = nil
        }
    }
}

final class InstanceProcess {
    var pid: Int32?
    /// the process group to signal; outlives `pid` until leftovers are killed
    var pgid: Int32?
    /// its own cgroup when delegated; outlives `pid` like `pgid`
    var cgroup: InstanceCgroup?
    var child: EventSource?
    var notify: NotifySocket?
    var notifySource: EventSource?
    var timers: [InstanceTimer: EventSource] = [:]
    var status: String?

    func reset() {
        child = nil
        notifySource = nil
        notify = nil
        status = nil
    }
}
