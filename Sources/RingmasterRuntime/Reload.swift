import Glibc
import RingmasterCore
import Systemd

/// What a reload did, for the log, STATUS= and the D-Bus `Reloaded` signal.
public struct ReloadSummary: Equatable, Sendable, CustomStringConvertible {
    public var added: [String] = []
    public var removed: [String] = []
    public var restarted: [String] = []
    public var scaled: [String] = []
    public var unchanged: [String] = []

    public var description: String {
        var parts: [String] = []
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        if !restarted.isEmpty { parts.append("restarted " + restarted.joined(separator: ", ")) }
        if !scaled.isEmpty { parts.append("scaled " + scaled.joined(separator: ", ")) }
        return parts.isEmpty ? "nothing changed" : parts.joined(separator: "; ")
    }
}

extension Supervisor {
    /// Applies a new, already validated config as a diff: new services start, removed ones stop
    /// (and are dropped once down), changed ones restart, an `instances`-only change just
    /// scales, and unchanged ones are not touched. `sockets` is the new name → fd map; a
    /// service whose socket fd changed counts as changed. `restart` restarts a changed service
    /// that is up (the daemon passes a rolling restart); by default every instance at once.
    public func apply(_ new: Config, sockets newSockets: [String: Int32],
                      restart: ((ServiceSlot) -> Void)? = nil) -> ReloadSummary {
        var summary = ReloadSummary()
        let oldSockets = sockets
        var next: [ServiceSlot] = []
        var toRestart: [ServiceSlot] = []

        for service in new.services {
            guard let slot = slot(named: service.name), !slot.retiring else {
                let slot = ServiceSlot(config: service)
                slot.pendingStart = service.autostart && !isShuttingDown
                next.append(slot)
                summary.added.append(service.name)
                continue
            }
            let before = slot.machine.config
            let socketsMoved = service.sockets.contains { oldSockets[$0] != newSockets[$0] }
            var a = before, b = service
            a.instances = 0; b.instances = 0; a.autostart = false; b.autostart = false
            // Every kept service takes the new settings (delays, signals, instance count)...
            perform(slot.machine.update(config: service, now: now), on: slot)
            if a == b && !socketsMoved {
                // ...and one whose processes would run the same way is not touched.
                if before.instances != service.instances { summary.scaled.append(service.name) }
                else { summary.unchanged.append(service.name) }
                if service.autostart && !before.autostart && !slot.machine.wanted { slot.pendingStart = !isShuttingDown }
            } else {
                if slot.machine.wanted {
                    toRestart.append(slot)
                } else if service.autostart && !isShuttingDown {
                    slot.pendingStart = true
                }
                summary.restarted.append(service.name)
            }
            next.append(slot)
        }
        for slot in allSlots where new.service(named: slot.name) == nil && !slot.retiring {
            slot.retiring = true
            slot.pendingStart = false
            slot.pendingStop = true
            summary.removed.append(slot.name)
        }
        // Retiring services keep their slot until their processes are gone.
        next += allSlots.filter { slot in slot.retiring && !next.contains { $0 === slot } }
        replaceSlots(next)
        for slot in allSlots { markChanged(slot) }
        replaceConfig(new, sockets: newSockets)
        for slot in toRestart {
            if let restart { restart(slot) } else { restartAllInstances(of: slot) }
        }
        reconcile()
        return summary
    }
}
