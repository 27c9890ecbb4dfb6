// A service: its instance machines plus what the service as a whole is wanted to do.
// Pure, like InstanceMachine. It does not decide *when* instances are told to start or stop
// (dependencies, batches, rolling restarts): the `Stack` does, feeding one instance at a time.

/// An instance action, tagged with the instance it is for.
public struct ServiceAction: Equatable, Sendable {
    public var instance: Int
    public var action: InstanceAction
    public init(instance: Int, action: InstanceAction) { self.instance = instance; self.action = action }
}

public struct ServiceMachine: Equatable, Sendable {
    public private(set) var config: ServiceConfig
    public private(set) var instances: [InstanceMachine] = []
    /// the service is wanted up (autostart, or a start command), even while it waits for
    /// its dependencies (`awaitingDependencies`)
    public internal(set) var wanted = false
    /// wanted, but its instances were not told to start yet: a dependency is not settled
    public internal(set) var awaitingDependencies = false
    /// set while a dependency it waits for is failed: "dependency db failed"
    public internal(set) var dependencyFailure: String? = nil
    /// instances at or above this index are being scaled away and are dropped once down
    public private(set) var wantedInstances: Int
    /// How the service's most recent process ended (kept when its instance is scaled away).
    public private(set) var lastExit: ExitStatus? = nil
    /// Why the service's most recent process ended ("" on D-Bus before any end).
    public private(set) var lastExitReason: ExitReason? = nil

    public init(config: ServiceConfig) {
        self.config = config
        self.wantedInstances = config.instances
        self.instances = (0..<config.instances).map { InstanceMachine(index: $0) }
        for i in instances { tally.add(i, 1) }
    }

    public var name: String { config.name }

    /// Instances by state, alive and spawning, kept as instances change: every question the
    /// Stack asks on every event is O(1), even with 10,000 instances.
    private var tally = Tally()

    struct Tally: Equatable, Sendable {
        var stopped = 0, starting = 0, running = 0, stopping = 0, backoff = 0, failed = 0, exited = 0
        var alive = 0
        var spawning = 0

        subscript(_ state: InstanceState) -> Int {
            switch state {
            case .stopped: return stopped
            case .starting: return starting
            case .running: return running
            case .stopping: return stopping
            case .backoff: return backoff
            case .failed: return failed
            case .exited: return exited
            }
        }

        mutating func add(_ i: InstanceMachine, _ sign: Int) {
            switch i.state {
            case .stopped: stopped += sign
            case .starting: starting += sign
            case .running: running += sign
            case .stopping: stopping += sign
            case .backoff: backoff += sign
            case .failed: failed += sign
            case .exited: exited += sign
            }
            if i.isActive || i.state == .starting || i.state == .stopping { alive += sign }
            if i.state == .starting && i.pid == nil && i.preStartPid == nil { spawning += sign }
        }
    }

    public var facts: ServiceFacts {
        ServiceFacts(wanted: wanted, dependencyFailed: dependencyFailure != nil, anyFailed: tally[.failed] > 0,
                     anyReady: tally[.running] > 0, anyAlive: tally.alive > 0, anyStopping: tally[.stopping] > 0,
                     anyBackoff: tally[.backoff] > 0, instances: instances.count,
                     allExited: !instances.isEmpty && tally[.exited] == instances.count)
    }

    /// The state a user sees, from the one table.
    public var state: ServiceState { ServiceStateTable.state(of: facts) }

    public var running: Int { tally[.running] }
    /// instances sent their stop signal, their process not yet gone
    public var stopping: Int { tally[.stopping] }
    public var pids: [Int32] { instances.compactMap(\.pid) }
    public var restarts: Int { instances.reduce(0) { $0 + $1.restarts } }
    public var failureReason: String? { dependencyFailure ?? instances.lazy.compactMap(\.failureReason).first }

    /// Settled, for the services `after` it: not wanted; or every wanted instance ready or
    /// ended for good, and none failed. (A service that failed is not settled: its dependents
    /// fail too.)
    public var isSettled: Bool {
        if !wanted { return true }
        if awaitingDependencies || dependencyFailure != nil { return false }
        return instances.count == wantedInstances && tally[.running] + tally[.exited] == instances.count
    }

    /// Every process gone, none being spawned.
    public var isDown: Bool { tally.alive == 0 }

    /// A spawn was asked for and its result is not in yet.
    public var isSpawning: Bool { tally.spawning > 0 }

    /// Live processes (being spawned counts).
    public var alive: Int { tally.alive }

    // MARK: - changes the Stack makes

    /// Change the number of instance slots: returns the new indices (to start, if wanted) and
    /// the indices beyond the new count, highest first (to stop); those are dropped once down.
    mutating func setInstanceCount(_ count: Int) -> (added: Range<Int>, removed: [Int]) {
        wantedInstances = count
        config.instances = count
        let before = instances.count
        if count > before {
            for i in before..<count {
                instances.append(InstanceMachine(index: i))
                tally.add(instances[i], 1)
            }
            return (before..<count, [])
        }
        let removed = Array((count..<before).reversed())
        dropScaledAway()
        return (count..<count, removed)
    }

    /// Replace the settings used for future decisions (delays, signals, the command of the
    /// next spawn). The instance count is the Stack's to change (`setInstanceCount`).
    mutating func replaceConfig(_ new: ServiceConfig) {
        var cfg = new
        cfg.instances = config.instances
        config = cfg
    }

    mutating func handle(_ event: InstanceEvent, instance index: Int, now: USec) -> [InstanceAction] {
        guard instances.indices.contains(index) else { return [] }
        switch event {
        case let .processExited(status): lastExit = status
        case .spawnFailed: lastExit = .exited(127)
        default: break
        }
        tally.add(instances[index], -1)
        let actions = instances[index].handle(event, config: config, now: now)
        tally.add(instances[index], 1)
        switch event {
        case .processExited, .spawnFailed:
            if let reason = instances[index].lastExitReason { lastExitReason = reason }
        case .preStartFailed, .preStartExited:
            // a failed pre-start is the end of that start (a stopped one is not recorded)
            if instances[index].lastExitReason == .preStart, !instances[index].inPreStart {
                lastExit = instances[index].lastExit
                lastExitReason = .preStart
            }
        default: break
        }
        dropScaledAway()
        return actions
    }

    private mutating func dropScaledAway() {
        while instances.count > wantedInstances, let last = instances.last,
              !last.isActive, last.state != .starting, last.state != .stopping, last.state != .backoff {
            tally.add(last, -1)
            instances.removeLast()
        }
    }
}
