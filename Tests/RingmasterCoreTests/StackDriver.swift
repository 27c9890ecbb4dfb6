@testable import RingmasterCore

/// A fake runtime for the `Stack`: performs its actions on pretend processes and timers,
/// as the real Supervisor does (spawn results are fed back after the step's other actions),
/// and records everything for the tests' assertions. No processes, no clock.
struct StackDriver {
    struct InstanceKey: Hashable { var id: ServiceID; var instance: Int }
    struct TimerKey: Hashable { var id: ServiceID; var instance: Int; var timer: InstanceTimer }

    var stack: Stack
    var now: USec = 0
    var nextPID: Int32 = 100
    /// live pretend processes
    var pids: [InstanceKey: Int32] = [:]
    var timers: [TimerKey: USec] = [:]
    /// what a `sampleMemory` reads for an instance (memory.current), 0 if not set
    var memoryBytes: [InstanceKey: UInt64] = [:]
    /// processes sent SIGKILL (they die at the next `exit` the test or model gives them)
    var killed = Set<InstanceKey>()
    var continuationPending = false
    var shutdownComplete = false
    /// services whose spawns fail (exec error)
    var failingSpawns = Set<String>()
    /// the result of every job the stack finished
    var jobResults: [JobID: JobResult] = [:]
    /// live pretend `pre-start` processes
    var preStartPids: [InstanceKey: Int32] = [:]
    /// the actions of the last step (its fed-back spawn results included), and of all steps
    var last: [StackAction] = []
    var all: [StackAction] = []
    /// the most processes one entry had alive at once
    var peakAlive: [ServiceID: Int] = [:]
    private var aliveCount: [ServiceID: Int] = [:]

    init(_ config: Config, limits: StackLimits = StackLimits()) {
        stack = Stack(config: config, limits: limits)
    }

    init(_ services: [ServiceConfig], limits: StackLimits = StackLimits()) {
        self.init(Config(services: services), limits: limits)
    }

    func id(_ name: String) -> ServiceID { stack.entry(named: name)!.id }
    func entry(_ name: String) -> StackEntry { stack.entry(named: name)! }
    func state(_ name: String) -> ServiceState { entry(name).state }
    func pid(_ name: String, _ i: Int) -> Int32? { pids[InstanceKey(id: id(name), instance: i)] }
    func alive(_ name: String) -> Int { aliveCount[id(name)] ?? 0 }

    // MARK: - steps

    mutating func run(_ actions: [StackAction]) {
        last = []
        var queue = actions
        var events: [(ServiceID, Int, InstanceEvent)] = []
        while true {
            for a in queue { perform(a, events: &events) }
            last += queue
            all += queue
            guard !events.isEmpty else { break }
            let (id, i, e) = events.removeFirst()
            queue = stack.handle(e, service: id, instance: i, now: now)
        }
        for (id, n) in aliveCount { peakAlive[id] = max(peakAlive[id] ?? 0, n) }
    }

    private mutating func perform(_ action: StackAction, events: inout [(ServiceID, Int, InstanceEvent)]) {
        switch action {
        case let .instance(id, i, a):
            let key = InstanceKey(id: id, instance: i)
            switch a {
            case .spawn:
                precondition(pids[key] == nil, "spawn of \(id).\(i) while pid \(pids[key]!) lives")
                let name = stack.entry(id)?.name ?? ""
                if failingSpawns.contains(name) {
                    events.append((id, i, .spawnFailed(reason: "exec \(name): No such file or directory")))
                } else {
                    nextPID += 1
                    pids[key] = nextPID
                    aliveCount[id, default: 0] += 1
                    events.append((id, i, .spawned(pid: nextPID)))
                }
            case .preStart:
                precondition(pids[key] == nil && preStartPids[key] == nil, "pre-start of \(id).\(i) while a process lives")
                let name = stack.entry(id)?.name ?? ""
                if failingSpawns.contains(name) {
                    events.append((id, i, .preStartFailed(reason: "exec pre-start: No such file or directory")))
                } else {
                    nextPID += 1
                    preStartPids[key] = nextPID
                    events.append((id, i, .preStartSpawned(pid: nextPID)))
                }
            case let .armTimer(t, deadline): timers[TimerKey(id: id, instance: i, timer: t)] = deadline
            case let .cancelTimer(t): timers[TimerKey(id: id, instance: i, timer: t)] = nil
            case .killAll: if pids[key] != nil || preStartPids[key] != nil { killed.insert(key) }
            case .signal, .stateChanged, .gaveUp: break
            case .sampleMemory: events.append((id, i, .memorySampled(bytes: memoryBytes[key] ?? 0)))
            }
        case .continueLater: continuationPending = true
        case .shutdownComplete: shutdownComplete = true
        case let .serviceRemoved(e):
            precondition(!pids.keys.contains { $0.id == e.id } && !preStartPids.keys.contains { $0.id == e.id },
                         "removed with live processes")
            timers = timers.filter { $0.key.id != e.id }
        case let .jobFinished(job, result): jobResults[job] = result
        case .serviceStateChanged, .serviceAdded, .note, .rolledBack: break
        }
    }

    // MARK: - events

    /// Boots and runs the backlog to its end (batches are tested on their own).
    mutating func boot() {
        run(stack.boot(now: now))
        thenDrain()
    }

    mutating func exit(_ name: String, _ i: Int, _ status: ExitStatus = .exited(0)) {
        exit(id(name), i, status)
    }

    mutating func exit(_ id: ServiceID, _ i: Int, _ status: ExitStatus) {
        let key = InstanceKey(id: id, instance: i)
        precondition(pids[key] != nil, "exit of \(id).\(i), which has no process")
        pids[key] = nil
        killed.remove(key)
        aliveCount[id, default: 1] -= 1
        run(stack.handle(.processExited(status), service: id, instance: i, now: now))
        thenDrain()
    }

    /// The pre-start of instance `i` ends.
    mutating func preStartExit(_ name: String, _ i: Int, _ status: ExitStatus = .exited(0)) {
        preStartExit(id(name), i, status)
    }

    mutating func preStartExit(_ id: ServiceID, _ i: Int, _ status: ExitStatus) {
        let key = InstanceKey(id: id, instance: i)
        precondition(preStartPids[key] != nil, "pre-start exit of \(id).\(i), which has no pre-start")
        preStartPids[key] = nil
        killed.remove(key)
        run(stack.handle(.preStartExited(status), service: id, instance: i, now: now))
        thenDrain()
    }

    /// READY=1, then whatever it let start (the next batches).
    mutating func ready(_ name: String, _ i: Int) {
        run(stack.handle(.readyNotified, service: id(name), instance: i, now: now))
        thenDrain()
    }

    mutating func ready(_ id: ServiceID, _ i: Int) {
        run(stack.handle(.readyNotified, service: id, instance: i, now: now))
    }

    mutating func fire(_ key: TimerKey) {
        now = max(now, timers.removeValue(forKey: key) ?? now)
        run(stack.handle(.timerFired(key.timer), service: key.id, instance: key.instance, now: now))
    }

    /// Fires every timer due by `now + by`, earliest first.
    mutating func advance(by delta: USec) {
        now += delta
        while let (key, _) = timers.filter({ $0.value <= now }).min(by: { $0.value < $1.value }) { fire(key) }
    }

    mutating func continueWork() {
        continuationPending = false
        run(stack.continueWork(now: now))
    }

    /// Whether the event and command helpers run the backlog to its end afterwards (tests of
    /// outcomes) or leave it to `continueWork()` (the model, which interleaves batches).
    var autoDrain = true

    /// Runs the backlog to its end, keeping the step's own actions in `last` before the batches'.
    private mutating func thenDrain() {
        guard autoDrain else { return }
        let first = last
        var rest: [StackAction] = []
        while continuationPending {
            continueWork()
            rest += last
        }
        last = first + rest
    }

    /// Runs the backlog to its end.
    mutating func drainBacklog() { while continuationPending { continueWork() } }

    /// Every process told to stop exits (by its stop signal), until none is stopping.
    mutating func stopAllStopping(status: ExitStatus = .killed(15)) {
        while let key = pids.keys.first(where: { k in
            stack.entry(k.id).map { $0.machine.instances.indices.contains(k.instance) && $0.machine.instances[k.instance].state == .stopping } ?? false
        }) {
            exit(key.id, key.instance, status)
        }
    }

    mutating func readyAll(_ name: String) {
        for i in entry(name).machine.instances.indices where entry(name).machine.instances[i].state == .starting {
            if pid(name, i) != nil { ready(name, i) }
        }
    }

    // MARK: - commands

    mutating func start(_ name: String) throws { run(try stack.start(name, now: now)) }
    mutating func stop(_ name: String) throws { run(try stack.stop(name, now: now)) }
    mutating func restart(_ name: String) throws { run(try stack.restart(name, now: now)) }
    mutating func scale(_ name: String, _ n: Int) throws { run(try stack.scale(name, to: n, now: now)) }
    mutating func shutdown() { run(stack.shutdown(now: now)) }
    @discardableResult
    mutating func reload(_ config: Config, changedSockets: Set<String> = []) throws -> ReloadPlan {
        let (plan, actions) = try stack.reload(to: config, changedSockets: changedSockets, now: now)
        run(actions)
        thenDrain()
        return plan
    }

    // MARK: - reading the last step

    func spawned(in actions: [StackAction]? = nil) -> [String] {
        (actions ?? last).compactMap { a in
            if case let .instance(id, i, .spawn) = a { return "\(stack.entry(id)?.name ?? "?").\(i)" }
            return nil
        }
    }

    func signalled(in actions: [StackAction]? = nil) -> [String] {
        (actions ?? last).compactMap { a in
            if case let .instance(id, i, .signal) = a { return "\(stack.entry(id)?.name ?? "?").\(i)" }
            return nil
        }
    }

    func stateChanges(_ name: String, in actions: [StackAction]? = nil) -> [ServiceState] {
        let target = stack.entry(named: name)?.id
        return (actions ?? all).compactMap { a in
            if case let .serviceStateChanged(id, _, to) = a, id == target { return to }
            return nil
        }
    }
}

func service(_ name: String, instances: Int = 1, after: [String] = [], ready: ReadyMode = .started,
             restart: RestartPolicy = .always, _ tweak: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
    var c = ServiceConfig(name: name, command: ["/bin/\(name)"])
    c.instances = instances
    c.after = after
    c.ready = ready
    c.restart = restart
    tweak(&c)
    return c
}
