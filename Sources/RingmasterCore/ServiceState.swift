// A service's state, derived by one table from what is wanted and from its instances' states
// (SPEC "Version 0.2 — Service state"; docs/architecture.md shows the table). Nothing else
// decides a service's state: `ServiceMachine.state` asks `ServiceStateTable.state(of:)`.

public enum ServiceState: String, Equatable, Sendable, CaseIterable {
    case stopped, starting, running, stopping, backoff, failed, exited
}

/// What the table looks at: each fact is read off the service machine.
public struct ServiceFacts: Equatable, Sendable {
    /// the service is wanted up (autostart or a start command), even while it waits for
    /// its dependencies
    public var wanted: Bool
    /// a dependency it waits for is failed
    public var dependencyFailed: Bool
    /// an instance gave up (start limit, restart = "never" after a failure)
    public var anyFailed: Bool
    /// an instance is ready (`running`)
    public var anyReady: Bool
    /// an instance has a process, or one is being spawned or stopped
    public var anyAlive: Bool
    /// an instance is being stopped
    public var anyStopping: Bool
    /// an instance waits out its restart delay
    public var anyBackoff: Bool
    /// how many instance slots there are (0: scaled to zero)
    public var instances: Int
    /// every instance ended and none will restart (`exited`)
    public var allExited: Bool

    public init(wanted: Bool, dependencyFailed: Bool = false, anyFailed: Bool = false, anyReady: Bool = false,
                anyAlive: Bool = false, anyStopping: Bool = false, anyBackoff: Bool = false,
                instances: Int = 1, allExited: Bool = false) {
        self.wanted = wanted; self.dependencyFailed = dependencyFailed; self.anyFailed = anyFailed
        self.anyReady = anyReady; self.anyAlive = anyAlive; self.anyStopping = anyStopping
        self.anyBackoff = anyBackoff; self.instances = instances; self.allExited = allExited
    }
}

public enum ServiceStateTable {
    /// The rows, first match wins (docs/architecture.md, "Service state"):
    ///
    /// | # | facts                                                      | state      |
    /// |---|------------------------------------------------------------|------------|
    /// | 1 | an instance failed, or a dependency it waits for failed    | `failed`   |
    /// | 2 | not wanted, a process left                                 | `stopping` |
    /// | 3 | not wanted, no process left                                | `stopped`  |
    /// | 4 | wanted, none ready, an instance being stopped              | `stopping` |
    /// | 5 | wanted, an instance ready                                  | `running`  |
    /// | 6 | wanted, none ready, a process spawning or waiting to be ready (a pre-start, a oneshot running) | `starting` |
    /// | 7 | wanted, no process, an instance waiting out restart-delay  | `backoff`  |
    /// | 8 | wanted, every instance ended for good                      | `exited`   |
    /// | 9 | wanted, scaled to 0 instances                              | `stopped`  |
    /// | 10| wanted, nothing spawned yet (dependencies, batches)        | `starting` |
    public static func state(of f: ServiceFacts) -> ServiceState {
        if f.anyFailed || (f.wanted && f.dependencyFailed) { return .failed }
        if !f.wanted { return f.anyAlive ? .stopping : .stopped }
        if f.anyStopping && !f.anyReady { return .stopping }
        if f.anyReady { return .running }
        if f.anyAlive { return .starting }
        if f.anyBackoff { return .backoff }
        if f.instances > 0 && f.allExited { return .exited }
        if f.instances == 0 { return .stopped }
        return .starting
    }
}
