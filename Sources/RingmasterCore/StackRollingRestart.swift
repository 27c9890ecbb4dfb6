// A rolling restart of one service with N > 1 instances, "surge by one", so that the service
// never has fewer ready processes on its shared socket than when the restart began:
//
//   1. surge:   one extra instance (number N); wait until it is ready;
//   2. replace: for i in 0..<N: once enough other instances are ready, restart instance i
//               (stop-signal, then a fresh process as soon as the old one is gone) and wait
//               until its new process is ready;
//   3. shrink:  the extra instance stops.
//
// "Ready" is the service's `ready` mode. The extra instance is the canary: if it does not
// become ready (it exits, cannot be spawned, or `ready-timeout` passes) it is stopped, the
// old instances keep serving, a reload's change of the service is undone (the service keeps
// its old config), and the restart fails (`rolledBack`). If the one being replaced fails
// (gives up), or the service is stopped, scaled or changed by a reload, the restart is
// abandoned and the extra instance goes. At most N + 1 processes run at any time.

public struct RollingRestart: Equatable, Sendable {
    public enum Phase: Equatable, Sendable {
        case surging
        /// replacing instance `index`; `generation` is its spawn count when it was told to
        /// restart (nil: waiting until enough other instances are ready to cover it)
        case replacing(index: Int, generation: Int?)
    }

    /// the number of instances before and after
    public let target: Int
    /// ready instances at the start (at most `target`): never fewer while an instance is replaced
    public let readyFloor: Int
    public internal(set) var phase: Phase = .surging
    /// every instance's spawn count at the start: an instance is replaced once its count grew
    public let generations: [Int]
    /// the service's config before the reload that began this restart (nil: a restart
    /// command): what the service keeps if the canary fails
    public let previousConfig: ServiceConfig?

    init(target: Int, readyAtStart: Int, generations: [Int] = [], previousConfig: ServiceConfig? = nil) {
        self.target = target
        self.readyFloor = min(target, readyAtStart)
        self.generations = generations
        self.previousConfig = previousConfig
    }
}

extension Stack {
    /// A rolling restart can run: several instances, wanted, started, none scaled away.
    func canRoll(_ e: StackEntry) -> Bool {
        let m = e.machine
        // (a oneshot never becomes ready: its instances are restarted together)
        return m.wantedInstances > 1 && m.wanted && !m.awaitingDependencies && m.instances.count == m.wantedInstances
            && m.config.type != .oneshot
            && m.instances.contains { $0.state == .running || $0.state == .starting }
    }

    mutating func beginRollingRestart(_ id: ServiceID, previousConfig: ServiceConfig? = nil, into out: inout [StackAction]) {
        guard let e = entry(id) else { return }
        let target = e.machine.wantedInstances
        update(id) {
            $0.rolling = RollingRestart(target: target, readyAtStart: $0.machine.running,
                                        generations: $0.machine.instances.map(\.generation), previousConfig: previousConfig)
            $0.lastRollback = nil
        }
        out.append(.note(id, StackNote(.info, "rolling-restart",
                                       "\(e.name): rolling restart of \(target) instances (one extra instance meanwhile)")))
        resize(id, to: target + 1)
    }

    /// Sets the instance count now (no batching: one instance comes or goes).
    mutating func resize(_ id: ServiceID, to count: Int) {
        var change: (added: Range<Int>, removed: [Int]) = (0..<0, [])
        update(id) { change = $0.machine.setInstanceCount(count) }
        guard let e = entry(id) else { return }
        if e.machine.wanted && !e.machine.awaitingDependencies { enqueue(.startRequested, id, instances: change.added) }
        // (those already at rest were dropped at once)
        enqueue(.stopRequested, id, instances: change.removed.filter { $0 < e.machine.instances.count })
    }

    /// Stops driving the entry's rolling restart; with `scaleBack`, the extra instance goes.
    mutating func cancelRollingRestart(_ id: ServiceID, scaleBack: Bool) {
        guard let e = entry(id), let r = e.rolling else { return }
        update(id) { $0.rolling = nil }
        if scaleBack, e.machine.wantedInstances == r.target + 1 { resize(id, to: r.target) }
    }

    /// Takes the next step of every rolling restart whose current step is complete.
    mutating func advanceRollingRestarts(now: USec, into out: inout [StackAction]) -> Bool {
        var progressed = false
        for p in entries.indices where entries[p].rolling != nil {
            progressed = advanceRollingRestart(entries[p].id, now: now, into: &out) || progressed
        }
        return progressed
    }

    private mutating func advanceRollingRestart(_ id: ServiceID, now: USec, into out: inout [StackAction]) -> Bool {
        // Everything is read in place (`instance(_:)`): a copy of the entry or its instances
        // alive across `update`/`feed` would copy every instance on every step.
        guard let p = position[id], var r = entries[p].rolling else { return false }
        let name = entries[p].name
        func instance(_ i: Int) -> InstanceMachine { entries[position[id]!].machine.instances[i] }
        guard entries[p].machine.instances.count == r.target + 1, entries[p].machine.wanted else {
            return abandonRollingRestart(id, "instances changed during the restart", into: &out)
        }
        switch r.phase {
        case .surging:
            let extra = instance(r.target)
            if let why = canaryFailure(extra, name: name, readyTimeout: entries[p].machine.config.readyTimeout) {
                return rollBack(id, why, into: &out)
            }
            guard extra.state == .running else { return false }
            r.phase = .replacing(index: 0, generation: nil)
        case let .replacing(index, generation?):
            let state = instance(index).state
            if state == .failed { return abandonRollingRestart(id, "\(name).\(index) failed", into: &out) }
            guard state == .running, instance(index).generation > generation else { return false }
            if index + 1 < r.target {
                r.phase = .replacing(index: index + 1, generation: nil)
            } else {
                update(id) { $0.rolling = nil }
                resize(id, to: r.target)
                out.append(.note(id, StackNote(.info, "rolling-restart", "\(name): rolling restart done")))
                return true
            }
        case let .replacing(index, nil):
            // Ready instances other than `index`: all ready ones but it.
            let readyOthers = entries[p].machine.running - (instance(index).state == .running ? 1 : 0)
            guard readyOthers >= r.readyFloor else { return false }
            r.phase = .replacing(index: index, generation: instance(index).generation)
            update(id) { $0.rolling = r }
            feed(.restartRequested, to: id, instance: index, now: now, into: &out)
            return true
        }
        update(id) { $0.rolling = r }
        return true
    }

    /// Why the canary (the extra instance) will not become ready, once that is known: it ended
    /// or is being ended after its spawn, before it was ready. nil: not spawned yet, starting, ready.
    private func canaryFailure(_ extra: InstanceMachine, name: String, readyTimeout: USec) -> String? {
        guard extra.generation > 0, extra.state != .starting, extra.state != .running else { return nil }
        let who = "\(name).\(extra.index)"
        if extra.state == .stopping, let cause = extra.endingCause {
            if cause == .readyTimeout {
                return "\(who) was not ready within \(formatDuration(readyTimeout)) (ready-timeout)"
            }
            return "\(who) was ended (\(cause.rawValue)) before it was ready"
        }
        if extra.lastExitReason == .spawn { return "\(who) could not be spawned" + (extra.failureReason.map { ": \($0)" } ?? "") }
        if extra.lastExitReason == .readyTimeout {
            return "\(who) was not ready within \(formatDuration(readyTimeout)) (ready-timeout)"
        }
        if let exit = extra.lastExit { return "\(who) \(exit) before it was ready" }
        return "\(who) ended before it was ready"
    }

    /// The canary failed: it goes, the old instances keep serving, a reload's change of the
    /// service is undone (it keeps its old config, and a later reload of the same file tries
    /// again), and the restart's jobs fail with `why`.
    private mutating func rollBack(_ id: ServiceID, _ why: String, into out: inout [StackAction]) -> Bool {
        guard let e = entry(id), let r = e.rolling else { return false }
        let restored = r.previousConfig != nil
        out.append(.note(id, StackNote(.warning, "rolled-back",
                                       "\(e.name): rolling restart rolled back: \(why); the old instances keep serving"
                                       + (restored ? " with the old config" : ""))))
        cancelRollingRestart(id, scaleBack: true)
        if let old = r.previousConfig { restoreConfig(id, old) }
        update(id) { $0.lastRollback = why }
        failJobs(of: id, "\(e.name): rolled back: \(why)")
        out.append(.rolledBack(id, reason: why, configRestored: restored))
        return true
    }

    /// The service's config as it was (the instance count stays the Stack's).
    private mutating func restoreConfig(_ id: ServiceID, _ old: ServiceConfig) {
        update(id) {
            $0.machine.replaceConfig(old)
            $0.configured = old
        }
        var whole = config
        if let i = whole.services.firstIndex(where: { $0.name == old.name }) {
            whole.services[i] = old
            replaceConfig(whole)
        }
    }

    private mutating func abandonRollingRestart(_ id: ServiceID, _ why: String, into out: inout [StackAction]) -> Bool {
        guard let e = entry(id) else { return false }
        out.append(.note(id, StackNote(.warning, "rolling-restart", "\(e.name): rolling restart abandoned: \(why)")))
        cancelRollingRestart(id, scaleBack: true)
        failJobs(of: id, "\(e.name): rolling restart abandoned: \(why)")
        return true
    }
}
