import RingmasterCore

extension Supervisor {
    /// Applies a new, already validated config as the core's reload plan says (new services
    /// start, removed ones stop and are dropped once down, changed ones restart rolling, an
    /// `instances`-only change scales, unchanged ones are not touched). `sockets` is the new
    /// name → fd map; a service whose socket's fd changed counts as changed. Throws, changing
    /// nothing, when the core refuses the config (the open-file limit).
    public func apply(_ new: Config, sockets newSockets: [String: Int32], job: JobID? = nil) throws(ControlError) -> ReloadPlan {
        var moved = Set<String>()
        for (name, fd) in newSockets where sockets[name] != fd { moved.insert(name) }
        for name in sockets.keys where newSockets[name] == nil { moved.insert(name) }
        let (plan, actions) = try stack.reload(to: new, changedSockets: moved, now: now, job: job)
        sockets = newSockets
        generation += 1
        for slot in allSlots { markChanged(slot) }
        run(actions)
        return plan
    }
}
