// A service: `instances` instance machines plus what the service as a whole is wanted to do.
// Pure, like InstanceMachine: the supervisor feeds events and performs the returned actions.

public enum ServiceState: String, Equatable, Sendable, CaseIterable {
    case stopped, starting, running, stopping, backoff, failed
}

/// An instance action, tagged with the instance it is for.
public struct ServiceAction: Equatable, Sendable {
    public var instance: Int
    public var action: InstanceAction
    public init(instance: Int, action: InstanceAction) { self.instance = instance; self.action = action }
}

public struct ServiceMachine: Equatable, Sendable {
    public private(set) var config: ServiceConfig
    public private(set) var instances: [InstanceMachine] = []
    /// the service is wanted up (autostart, or a start command)
    public private(set) var wanted = false
    /// instances above this index are being scaled away and are dropped once stopped
    public private(set) var wantedInstances: Int

    public init(config: ServiceConfig) {
        self.config = config
        self.wantedInstances = config.instances
        self.instances = (0..<config.instances).map { InstanceMachine(index: $0) }
    }

    public var name: String { config.name }

    /// The state a user sees: the most urgent of the instances' states.
    public var state: ServiceState {
        let states = instances.map(\.state)
        if states.contains(.failed) { return .failed }
        if states.contains(.stopping) { return .stopping }
        if states.contains(.starting) { return .starting }
        if states.contains(.backoff) { return .backoff }
        if wanted {
            // wanted but not spawned yet: waiting for dependencies
            return states.allSatisfy({ $0 == .running }) ? .running
                : (states.contains(.running) ? .starting : (isSettledDown ? .stopped : .starting))
        }
        return states.contains(.running) ? .running : .stopped
    }

    /// wanted, yet every instance ended for good (restart = never / on-failure after a clean exit)
    private var isSettledDown: Bool {
        !instances.isEmpty && instances.allSatisfy { $0.state == .stopped && $0.lastExit != nil && $0.wanted }
    }

    public var running: Int { instances.filter { $0.state == .running }.count }
    public var pids: [Int32] { instances.compactMap(\.pid) }
    public var restarts: Int { instances.reduce(0) { $0 + $1.restarts } }
    public var failureReason: String? { instances.lazy.compactMap(\.failureReason).first }
    /// How the service's most recent process ended (kept when its instance is scaled away).
    public private(set) var lastExit: ExitStatus? = nil

    /// Ready, for the services that are `after` this one and for the daemon's READY=1:
    /// every wanted instance running.
    public var isReady: Bool { wanted && instances.count == wantedInstances && instances.allSatisfy { $0.state == .running } }

    /// Nothing more will happen without a command: dependents need not wait for it.
    public var isSettled: Bool {
        if isReady { return true }
        switch state {
        case .failed: return true
        case .stopped: return true
        default: return false
        }
    }

    /// Every process gone.
    public var isDown: Bool { instances.allSatisfy { !$0.isActive && $0.state != .stopping } }

    // MARK: - commands

    public mutating func start(now: USec) -> [ServiceAction] {
        wanted = true
        return instances.indices.flatMap { feed(.startRequested, to: $0, now: now) }
    }

    public mutating func stop(now: USec) -> [ServiceAction] {
        wanted = false
        return instances.indices.reversed().flatMap { feed(.stopRequested, to: $0, now: now) }
    }

    /// Restart every instance at once (rolling restarts are the supervisor's business, one instance at a time).
    public mutating func restart(now: USec) -> [ServiceAction] {
        wanted = true
        return instances.indices.flatMap { feed(.restartRequested, to: $0, now: now) }
    }

    public mutating func restartInstance(_ index: Int, now: USec) -> [ServiceAction] {
        guard instances.indices.contains(index) else { return [] }
        wanted = true
        return feed(.restartRequested, to: index, now: now)
    }

    /// Change the number of instances: new ones start (if the service is wanted), the highest
    /// numbers stop first and are dropped once down.
    public mutating func scale(to count: Int, now: USec) -> [ServiceAction] {
        wantedInstances = count
        config.instances = count
        var actions: [ServiceAction] = []
        if count > instances.count {
            for i in instances.count..<count {
                instances.append(InstanceMachine(index: i))
                if wanted { actions += feed(.startRequested, to: i, now: now) }
            }
        } else {
            for i in (count..<instances.count).reversed() {
                actions += feed(.stopRequested, to: i, now: now)
            }
        }
        dropScaledAway()
        return actions
    }

    /// Replace the config. The supervisor decides whether that needs a restart; this only swaps
    /// the settings used for future decisions (delays, signals) and scales.
    public mutating func update(config new: ServiceConfig, now: USec) -> [ServiceAction] {
        let count = new.instances
        var cfg = new
        cfg.instances = config.instances
        config = cfg
        return count == wantedInstances ? [] : scale(to: count, now: now)
    }

    // MARK: - events

    public mutating func handle(_ event: InstanceEvent, instance index: Int, now: USec) -> [ServiceAction] {
        guard instances.indices.contains(index) else { return [] }
        switch event {
        case let .processExited(status): lastExit = status
        case .spawnFailed: lastExit = .exited(127)
        default: break
        }
        let actions = feed(event, to: index, now: now)
        dropScaledAway()
        return actions
    }

    private mutating func feed(_ event: InstanceEvent, to index: Int, now: USec) -> [ServiceAction] {
        instances[index].handle(event, config: config, now: now).map { ServiceAction(instance: index, action: $0) }
    }

    private mutating func dropScaledAway() {
        while instances.count > wantedInstances, let last = instances.last,
              !last.isActive, last.state == .stopped || last.state == .failed {
            instances.removeLast()
        }
    }
}
