// A rolling restart of one service with N > 1 instances, "surge by one", so that the service
// never has fewer ready processes on its shared socket than when the restart began:
//
//   1. surge:   one extra instance (number N); wait until it is ready;
//   2. replace: for i in 0..<N: once enough other instances are ready, restart instance i
//               (stop-signal, then a fresh process as soon as the old one is gone) and wait
//               until its new process is ready;
//   3. shrink:  the extra instance stops.
//
// "Ready" is the service's `ready` mode. If the extra instance or the one being replaced
// fails (gives up), or the service is stopped, scaled or changed by a reload, the restart is
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

    init(target: Int, readyAtStart: Int) {
        self.target = target
        self.readyFloor = min(target, readyAtStart)
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

    mutating func beginRollingRestart(_ id: ServiceID, into out: inout [StackAction]) {
        guard let e = entry(id) else { return }
        let target = e.machine.wantedInstances
        update(id) { $0.rolling = RollingRestart(target: target, readyAtStart: $0.machine.running) }
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
            let extra = instance(r.target).state
            if extra == .failed {
                return abandonRollingRestart(id, "the extra instance \(name).\(r.target) failed", into: &out)
            }
            guard extra == .running else { return false }
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

    private mutating func abandonRollingRestart(_ id: ServiceID, _ why: String, into out: inout [StackAction]) -> Bool {
        guard let e = entry(id) else { return false }
        out.append(.note(id, StackNote(.warning, "rolling-restart", "\(e.name): rolling restart abandoned: \(why)")))
        cancelRollingRestart(id, scaleBack: true)
        return true
    }
}
