// The commands a control client can give (D-Bus, ringctl), as changes of what is wanted.
// Each returns the actions of its step; process and timer events do the rest.

extension Stack {
    private func refuseWhileShuttingDown() throws(CommandError) {
        if shuttingDown { throw .shuttingDown }
    }

    /// Starts every autostart service, each once its dependencies are settled.
    public mutating func boot(now: USec) -> [StackAction] {
        var out: [StackAction] = []
        for e in entries { touch(e.id) }
        finish(now: now, into: &out)
        return out
    }

    /// Wants the service up; it starts once its dependencies are settled. A failed service
    /// gets a fresh start (its start limit is reset), and so does a failed dependency it waits
    /// for: `ringctl start web` tries the whole chain again.
    /// With `job`, the step that has every wanted instance ready (or the service failed)
    /// reports `.jobFinished(job, …)`; so do the other commands, each for its own goal.
    public mutating func start(_ name: String, now: USec, job: JobID? = nil) throws(CommandError) -> [StackAction] {
        try refuseWhileShuttingDown()
        let id = try require(name)
        var out: [StackAction] = []
        addJob(job, [goal(id, .up)])
        if let e = entry(id), e.machine.wanted, !e.machine.awaitingDependencies, e.rolling == nil,
           e.machine.instances.allSatisfy({ $0.state == .running || $0.state == .starting }) {
            if job != nil { finish(now: now, into: &out) }
            return out // up already: nothing to start
        }
        want(id, retryingFailedDependencies: true, now: now, into: &out)
        finish(now: now, into: &out)
        return out
    }

    /// Wants the entry up, behind its dependencies. Its failed instances are reset to
    /// `stopped` at once (their start limit with them), so that what waits for it waits
    /// for a start, not for a failure.
    private mutating func want(_ id: ServiceID, retryingFailedDependencies: Bool, now: USec, into out: inout [StackAction]) {
        guard let e = entry(id) else { return }
        if retryingFailedDependencies {
            for name in graph.allDependencies(of: e.name) {
                if let dep = entry(named: name), dep.state == .failed {
                    want(dep.id, retryingFailedDependencies: false, now: now, into: &out)
                }
            }
        }
        setPendingStop(id, false)
        purgeBacklog(of: id)
        update(id) {
            $0.machine.wanted = true
            $0.machine.dependencyFailure = nil
        }
        for i in e.machine.instances.indices where e.machine.instances[i].state == .failed {
            feed(.stopRequested, to: id, instance: i, now: now, into: &out)
        }
        setAwaiting(id, true)
    }

    /// Wants the service down: every instance gets its stop signal (highest number first).
    /// Its dependents are not stopped (`after` orders starts; it does not bind lifetimes).
    public mutating func stop(_ name: String, now: USec, job: JobID? = nil) throws(CommandError) -> [StackAction] {
        try refuseWhileShuttingDown()
        let id = try require(name)
        var out: [StackAction] = []
        addJob(job, [goal(id, .down)])
        cancelRollingRestart(id, scaleBack: true)
        beginStop(id)
        finish(now: now, into: &out)
        return out
    }

    /// A fresh process for every instance: rolling (surge by one) when several are up; all at
    /// once for one instance; a service that is not up is started (after its dependencies).
    /// A rolling restart already under way continues: it replaces every process anyway.
    public mutating func restart(_ name: String, now: USec, job: JobID? = nil) throws(CommandError) -> [StackAction] {
        try refuseWhileShuttingDown()
        let id = try require(name)
        var out: [StackAction] = []
        guard let e = entry(id), e.rolling == nil else {
            addJob(job, [replacedGoal(id)])
            if job != nil { finish(now: now, into: &out) }
            return out
        }
        let up = e.machine.wanted && !e.machine.awaitingDependencies && e.machine.alive > 0
        addJob(job, [up ? replacedGoal(id) : goal(id, .up)])
        if up {
            replaceProcesses(id, into: &out)
        } else {
            want(id, retryingFailedDependencies: true, now: now, into: &out)
        }
        finish(now: now, into: &out)
        return out
    }

    /// A fresh process for every instance of a service that is up: rolling when it can roll,
    /// else every instance restarted (in batches).
    mutating func replaceProcesses(_ id: ServiceID, previousConfig: ServiceConfig? = nil, into out: inout [StackAction]) {
        guard let e = entry(id) else { return }
        if canRoll(e) {
            beginRollingRestart(id, previousConfig: previousConfig, into: &out)
        } else {
            // (Instances a scale-down is taking away keep their stop: purging the backlog
            // must not leave them running beyond the count.)
            purgeBacklog(of: id)
            let count = e.machine.wantedInstances
            enqueue(.restartRequested, id, instances: e.machine.instances.indices.filter { $0 < count })
            enqueue(.stopRequested, id, instances: e.machine.instances.indices.filter { $0 >= count }.reversed())
        }
    }

    /// Changes the number of instances (0 included): new ones start if the service is
    /// started; the highest numbers stop first and are dropped once down. A rolling restart
    /// under way is abandoned (the count given wins).
    public mutating func scale(_ name: String, to count: Int, now: USec, job: JobID? = nil) throws(CommandError) -> [StackAction] {
        try refuseWhileShuttingDown()
        let id = try require(name)
        if let problem = ServiceConfig.instancesProblem(Int64(count), maximum: limits.maximumInstances) {
            throw .invalidArgument(problem)
        }
        var wanted = instanceCounts()
        wanted[id] = count
        try checkCapacity(wanted, for: "scaling \(name) to \(count)")
        var out: [StackAction] = []
        addJob(job, [goal(id, .count(count))])
        cancelRollingRestart(id, scaleBack: false)
        resize(id, to: count)
        finish(now: now, into: &out)
        return out
    }

    /// Checks a kill request: the service exists and has processes, the signal is one.
    /// (Signalling changes nothing that is wanted: the runtime sends it, exits follow.)
    public func checkKill(_ name: String, signal: Int32) throws(CommandError) -> ServiceID {
        let id = try require(name)
        guard signal >= 1, signal <= Signals.realtimeMaximum else {
            throw .invalidArgument("\(signal) is not a signal number (1…\(Signals.realtimeMaximum))")
        }
        guard let e = entry(id), !e.machine.pids.isEmpty else { throw .failed("\(name) has no process to signal") }
        return id
    }

    /// Stops everything in reverse dependency order; `shutdownComplete` once every process is gone.
    public mutating func shutdown(now: USec) -> [StackAction] {
        var out: [StackAction] = []
        guard !shuttingDown else { return out }
        shuttingDown = true
        purgeBacklog()
        for e in entries {
            if e.rolling != nil { update(e.id) { $0.rolling = nil } }
            setAwaiting(e.id, false)
            setPendingStop(e.id, true)
        }
        finish(now: now, into: &out)
        return out
    }

    // MARK: - capacity

    /// Instances each entry will run (a rolling restart's extra one included).
    func instanceCounts() -> [ServiceID: Int] {
        var counts: [ServiceID: Int] = [:]
        for e in entries { counts[e.id] = max(e.machine.wantedInstances, e.machine.instances.count) }
        return counts
    }

    /// The descriptors each instance of `service` holds: `filesPerInstance`, and one more per
    /// probe table (an `http` probe keeps its connection open between probes; `tcp` and
    /// `exec` hold a socket or a pidfd while they run).
    func filesPerInstance(of service: ServiceConfig) -> Int {
        limits.filesPerInstance + (service.liveness == nil ? 0 : 1) + (service.readiness == nil ? 0 : 1)
    }

    /// Refuses instance counts (of each service config) the open-file limit cannot hold,
    /// before any EMFILE storm.
    func checkCapacity(_ counts: [(ServiceConfig, Int)], for what: String) throws(CommandError) {
        guard let fileLimit = limits.fileLimit else { return }
        let total = counts.reduce(0) { $0 + $1.1 }
        let files = counts.reduce(0) { $0 + $1.1 * filesPerInstance(of: $1.0) }
        let room = max(0, fileLimit - limits.filesReserved)
        guard files > room else { return }
        throw .invalidArgument("\(what) needs room for \(total) instances, \(files) descriptors, but the open-file limit "
            + "(\(fileLimit)) allows \(room) (\(limits.filesReserved) kept for ringmasterd; each instance holds "
            + "\(limits.filesPerInstance), one more per probe table); raise LimitNOFILE= in ringmaster.service")
    }

    /// `checkCapacity` of the entries' instance counts (by id, from `instanceCounts()`).
    func checkCapacity(_ counts: [ServiceID: Int], for what: String) throws(CommandError) {
        try checkCapacity(counts.compactMap { id, n in entry(id).map { ($0.machine.config, n) } }, for: what)
    }

    /// The check a config gets at load and reload.
    public func checkCapacity(of config: Config) throws(CommandError) {
        try checkCapacity(config.services.map { ($0, $0.instances) }, for: "this config")
    }
}
