// A reload as a pure plan: what each service of the old and the new config becomes, decided
// from the two configs and the sockets whose descriptors changed. `Stack.reload` carries it out.

public struct ReloadPlan: Equatable, Sendable, CustomStringConvertible {
    public enum Verdict: Equatable, Sendable {
        /// new in this config: starts if autostart
        case added
        /// gone from this config: stops (after what depends on it), then is dropped
        case removed
        /// its processes would run differently (command, environment, a socket's descriptor…):
        /// restarted (rolling) if up
        case changed
        /// only `instances` changed: scaled, nothing restarted
        case scaled
        /// nothing its processes see changed (settings like restart delays may have)
        case unchanged
    }

    /// every service of both configs, new config order first, then the removed ones
    public private(set) var verdicts: [(name: String, verdict: Verdict)] = []
    /// kept services that were not wanted and are autostart now: they start
    public private(set) var startsNow: [String] = []

    public static func == (a: ReloadPlan, b: ReloadPlan) -> Bool {
        a.startsNow == b.startsNow && a.verdicts.map(\.name) == b.verdicts.map(\.name)
            && a.verdicts.map(\.verdict) == b.verdicts.map(\.verdict)
    }

    /// `old`: the running services' configs as the files said (a count set by a scale command
    /// is not a change of the file: a reload that leaves the file's `instances` alone keeps it);
    /// `wanted`: the names of those wanted up now; `changedSockets`: sockets whose descriptor
    /// is not the one the running processes hold.
    public init(old: [ServiceConfig], wanted: Set<String>, new: Config, changedSockets: Set<String>) {
        var before: [String: ServiceConfig] = [:]
        for s in old where before[s.name] == nil { before[s.name] = s }
        for service in new.services {
            guard let previous = before.removeValue(forKey: service.name) else {
                verdicts.append((service.name, .added))
                continue
            }
            var a = previous, b = service
            a.instances = 0; b.instances = 0; a.autostart = false; b.autostart = false
            a.reloadSignal = nil; b.reloadSignal = nil // what `reload NAME` sends: no process sees it
            let socketsMoved = service.sockets.contains { changedSockets.contains($0) }
            let verdict: Verdict = a != b || socketsMoved ? .changed
                : previous.instances != service.instances ? .scaled : .unchanged
            verdicts.append((service.name, verdict))
            if service.autostart, !previous.autostart, !wanted.contains(service.name) { startsNow.append(service.name) }
        }
        for s in old where before.removeValue(forKey: s.name) != nil { verdicts.append((s.name, .removed)) }
    }

    public func verdict(of name: String) -> Verdict? { verdicts.first { $0.name == name }?.verdict }

    public func names(_ verdict: Verdict) -> [String] { verdicts.filter { $0.verdict == verdict }.map(\.name) }

    /// "added x; removed y; restarted z; scaled w; started v", or "nothing changed".
    public var description: String {
        var parts: [String] = []
        for (verdict, word) in [(Verdict.added, "added"), (.removed, "removed"), (.changed, "restarted"), (.scaled, "scaled")] {
            let names = self.names(verdict)
            if !names.isEmpty { parts.append(word + " " + names.joined(separator: ", ")) }
        }
        if !startsNow.isEmpty { parts.append("started " + startsNow.joined(separator: ", ")) }
        return parts.isEmpty ? "nothing changed" : parts.joined(separator: "; ")
    }
}

extension Stack {
    /// The plan a reload to `new` would carry out.
    public func plan(for new: Config, changedSockets: Set<String>) -> ReloadPlan {
        var old: [ServiceConfig] = []
        var wanted = Set<String>()
        for e in services {
            old.append(e.configured)
            if e.machine.wanted { wanted.insert(e.name) }
        }
        return ReloadPlan(old: old, wanted: wanted, new: new, changedSockets: changedSockets)
    }

    /// Applies a validated config as its plan says: new services start (after their
    /// dependencies), removed ones stop (after their dependents) and are dropped once down,
    /// changed ones restart (rolling when several instances are up), an `instances`-only change
    /// scales, and an unchanged service is not touched (no action for it). Throws, changing
    /// nothing, when the new config needs more instances than the open-file limit allows.
    /// With `job`: `.jobFinished(job, …)` once every change is done — added and started
    /// services up, removed ones gone, changed ones restarted (or rolled back: a failure),
    /// scaled ones at their count.
    public mutating func reload(to new: Config, changedSockets: Set<String>, now: USec, job: JobID? = nil) throws(CommandError)
        -> (plan: ReloadPlan, actions: [StackAction]) {
        if shuttingDown { throw .shuttingDown }
        try checkCapacity(of: new)
        let plan = plan(for: new, changedSockets: changedSockets)
        var out: [StackAction] = []
        var restart: [ServiceID] = []
        var goals: [Job.Goal] = []
        var previous: [String: ServiceConfig] = [:]

        // Removed services retire first, so a service added again under the same name is a
        // new entry beside the old one that stops.
        for name in plan.names(.removed) {
            guard let id = current[name] else { continue }
            goals.append(goal(id, .down))
            cancelRollingRestart(id, scaleBack: false)
            purgeBacklog(of: id)
            setAwaiting(id, false)
            update(id) { $0.retiring = true }
            setPendingStop(id, true)
        }
        var kept: [StackEntry] = []
        let retired = entries.filter(\.retiring)
        var byName: [String: StackEntry] = [:]
        for e in entries where !e.retiring { byName[e.name] = e }
        for service in new.services {
            if var e = byName[service.name] {
                previous[service.name] = e.configured
                e.machine.replaceConfig(service)
                e.configured = service
                kept.append(e)
            } else {
                kept.append(StackEntry(id: allocateID(), machine: newMachine(service), configured: service))
                out.append(.serviceAdded(kept[kept.count - 1].id))
            }
        }
        replaceEntries(kept + retired)
        replaceConfig(new)

        for service in new.services {
            guard let id = current[service.name], let e = entry(id) else { continue }
            touch(id)
            switch plan.verdict(of: service.name) {
            case .changed?:
                // A changed service takes the file's instance count again (a scale command's
                // count lasts until then).
                cancelRollingRestart(id, scaleBack: false)
                if e.machine.wantedInstances != service.instances { resize(id, to: service.instances) }
                if e.machine.wanted { restart.append(id) }
                else if service.autostart { startWanted(id); goals.append(goal(id, .up)) }
            case .scaled?:
                cancelRollingRestart(id, scaleBack: false)
                resize(id, to: service.instances)
                goals.append(goal(id, .count(service.instances)))
            case .added?:
                if service.autostart { goals.append(goal(id, .up)) }
            case .unchanged?, .removed?, nil:
                break
            }
            if plan.startsNow.contains(service.name) { startWanted(id); goals.append(goal(id, .up)) }
        }
        for id in restart {
            guard let e = entry(id) else { continue }
            if e.machine.awaitingDependencies {
                goals.append(goal(id, .up))
                continue // starts with the new config once its dependencies are settled
            } else if e.machine.alive == 0 {
                goals.append(goal(id, .up))
                // Not up (failed, exited, backing off): a fresh start with the new config.
                purgeBacklog(of: id)
                for i in e.machine.instances.indices { feed(.stopRequested, to: id, instance: i, now: now, into: &out) }
                enqueue(.startRequested, id, instances: e.machine.instances.indices)
            } else {
                goals.append(replacedGoal(id))
                replaceProcesses(id, previousConfig: previous[e.name], into: &out)
            }
        }
        addJob(job, goals)
        finish(now: now, into: &out)
        return (plan, out)
    }

    private mutating func startWanted(_ id: ServiceID) {
        update(id) { $0.machine.wanted = true }
        setAwaiting(id, true)
    }
}
