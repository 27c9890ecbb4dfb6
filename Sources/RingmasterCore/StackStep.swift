// The end of every step of the Stack: what the step made possible is settled here, in
// passes until nothing more moves — starts whose dependencies are now settled, stops whose
// dependents are now down, rolling restarts' next steps, a bounded batch of the backlog,
// removals — and every service whose state changed is reported.

extension Stack {
    mutating func finish(now: USec, draining: Bool = true, into out: inout [StackAction]) {
        var budget = draining ? limits.workPerStep : 0
        var progressed = true
        while progressed {
            progressed = false
            // What an event settled is told before what it lets happen ("db: starting ->
            // running" before "app.0 started"); a service with work queued by this step is
            // told after that work ("web.0: running -> stopping" before "web: running -> stopping").
            report(skippingQueued: true, into: &out)
            if awaiting > 0 && !shuttingDown { progressed = startSettled(into: &out) || progressed }
            if stopping > 0 { progressed = stopUnblocked(into: &out) || progressed }
            progressed = advanceRollingRestarts(now: now, into: &out) || progressed
            progressed = drain(budget: &budget, now: now, into: &out) || progressed
            progressed = removeRetired(into: &out) || progressed
        }
        report(skippingQueued: false, into: &out)
        settleJobs(into: &out)
        // (Work held back by the stops in flight goes on from the exits that end them.)
        if !backlog.isEmpty && !waitsForStops { out.append(.continueLater) }
        if shuttingDown, !shutdownReported, backlog.isEmpty, isDown {
            shutdownReported = true
            out.append(.shutdownComplete)
        }
    }

    /// Starts what waits on dependencies that are now settled; a service whose dependency
    /// failed shows it (`dependency db failed`) until that dependency is started again.
    private mutating func startSettled(into out: inout [StackAction]) -> Bool {
        var progressed = false
        for p in entries.indices where entries[p].machine.awaitingDependencies {
            let id = entries[p].id
            var failed: String? = nil
            var waiting = false
            for name in graph.dependencies(of: entries[p].name) {
                guard let dep = entry(named: name) else { continue }
                if dep.state == .failed, dep.machine.wanted { failed = failed ?? name }
                if !isSettled(dep) { waiting = true }
            }
            let reason = failed.map { "dependency \($0) failed" }
            if entries[p].machine.dependencyFailure != reason {
                if let reason {
                    out.append(.note(id, StackNote(.warning, "dependency-failed",
                                                   "\(entries[p].name): not started: \(reason)")))
                }
                entries[p].machine.dependencyFailure = reason
                touch(id)
            }
            guard !waiting, reason == nil else { continue }
            setAwaiting(id, false)
            enqueue(.startRequested, id, instances: 0..<entries[p].machine.instances.count)
            progressed = true
        }
        return progressed
    }

    /// Stops what waits only on its dependents being down (shutdown, removal), dependents first.
    private mutating func stopUnblocked(into out: inout [StackAction]) -> Bool {
        var progressed = false
        for id in stopOrder() {
            guard let p = position[id], entries[p].pendingStop else { continue }
            guard dependentsForStop(of: entries[p]).allSatisfy({ e in !e.pendingStop && e.machine.isDown }) else { continue }
            setPendingStop(id, false)
            beginStop(id)
            progressed = true
        }
        return progressed
    }

    /// Wants the entry down now: every instance is told to stop, highest number first.
    mutating func beginStop(_ id: ServiceID) {
        purgeBacklog(of: id)
        setAwaiting(id, false)
        update(id) { e in
            e.machine.wanted = false
            e.machine.dependencyFailure = nil
        }
        guard let e = entry(id) else { return }
        enqueue(.stopRequested, id, instances: e.machine.instances.indices.reversed())
    }

    /// Retiring entries first (their dependents, if any, are retiring too), then the current
    /// ones, dependents before their dependencies.
    private func stopOrder() -> [ServiceID] {
        var order = entries.reversed().filter(\.retiring).map(\.id)
        for name in graph.stopOrder { if let id = current[name] { order.append(id) } }
        return order
    }

    private func dependentsForStop(of entry: StackEntry) -> [StackEntry] {
        var list: [StackEntry] = []
        if !entry.retiring {
            for name in graph.dependents(of: entry.name) {
                if let e = self.entry(named: name), e.id != entry.id { list.append(e) }
            }
        }
        for e in entries where e.retiring && e.id != entry.id && e.machine.config.after.contains(entry.name) {
            list.append(e)
        }
        return list
    }

    /// Feeds queued instance commands while the step's budget lasts.
    private mutating func drain(budget: inout Int, now: USec, into out: inout [StackAction]) -> Bool {
        var progressed = false
        while budget > 0, let item = backlog.first {
            if waitsForStops { break }
            _ = backlog.pop()
            progressed = true // even a stale item: its entry's queue got shorter, which may settle it
            // (a job waiting for the entry's queue to empty looks again, even after a stale item)
            if !jobs.isEmpty { jobTouched.insert(item.id) }
            guard let p = position[item.id], entries[p].machine.instances.indices.contains(item.instance) else { continue }
            if item.event == .startRequested || item.event == .restartRequested {
                // stale: scaled away meanwhile, or no longer wanted
                if item.instance >= entries[p].machine.wantedInstances || !entries[p].machine.wanted { continue }
            }
            feed(item.event, to: item.id, instance: item.instance, now: now, into: &out)
            budget -= 1
            progressed = true
        }
        return progressed
    }

    /// The next queued command would stop a process while `maximumStopping` are already
    /// being stopped: it waits for their exits.
    var waitsForStops: Bool {
        guard let item = backlog.first, item.event == .stopRequested || item.event == .restartRequested else { return false }
        return stoppingInstances >= limits.maximumStopping
    }

    private mutating func removeRetired(into out: inout [StackAction]) -> Bool {
        let gone = entries.filter { $0.retiring && !$0.pendingStop && $0.machine.isDown }
        guard !gone.isEmpty else { return false }
        for e in gone {
            report(e.id, into: &out)
            out.append(.note(e.id, StackNote(.info, "removed", "\(e.name): removed")))
            out.append(.serviceRemoved(e))
        }
        let ids = Set(gone.map(\.id))
        entries.removeAll { ids.contains($0.id) }
        touched.removeAll { ids.contains($0) }
        touchedSet.subtract(ids)
        reindex()
        return true
    }

    /// Reports the touched entries whose state changed since last reported. An entry with a
    /// spawn under way (the runtime feeds its result back before anything else happens) is
    /// reported with that result: a restart goes `backoff -> running`, not through `starting`.
    private mutating func report(skippingQueued: Bool, into out: inout [StackAction]) {
        guard !touched.isEmpty else { return }
        let ids = touched
        touched.removeAll(keepingCapacity: true)
        touchedSet.removeAll(keepingCapacity: true)
        for id in ids {
            guard let p = position[id] else { continue }
            if (skippingQueued && backlog.count(of: id) > 0) || entries[p].machine.isSpawning {
                touch(id)
            } else {
                report(id, into: &out)
            }
        }
    }

    private mutating func report(_ id: ServiceID, into out: inout [StackAction]) {
        guard let p = position[id] else { return }
        let state = entries[p].machine.state
        let old = entries[p].reportedState
        guard state != old else { return }
        entries[p].reportedState = state
        out.append(.serviceStateChanged(id, from: old, to: state))
    }
}
