// `memory-restart` for one instance: the decision that its memory *stays* above the figure.
//
// The runtime feeds `memorySampled(bytes)` (memory.current) each time the instance's cgroup
// tells of a memory.high breach (memory.events changes: inotify), and when asked by
// `sampleMemory`. A sample above the figure starts the window (`memoryRestartWindow`) with the
// one-shot `.memoryCheck` timer; a sample at or below it ends the window; a sample above it
// once the window is over marks the instance `memoryRestartDue`. The Stack then restarts due
// instances gracefully, one per service at a time (StackMemoryRestart.swift). No timer runs
// while memory is below the figure: nothing polls.

extension InstanceMachine {
    mutating func handleMemorySample(_ bytes: UInt64, config: ServiceConfig, now: USec,
                                     into actions: inout [InstanceAction]) {
        guard let figure = config.memoryRestart, pid != nil, state == .running, !memoryRestartDue else { return }
        guard bytes > figure else {
            clearMemoryWatch(into: &actions)
            return
        }
        guard let since = memoryAboveSince else {
            memoryAboveSince = now
            memoryCheckArmed = true
            actions.append(.armTimer(.memoryCheck, deadline: now &+ config.memoryRestartWindow))
            return
        }
        if now >= since &+ config.memoryRestartWindow {
            memoryRestartDue = true
            if memoryCheckArmed {
                memoryCheckArmed = false
                actions.append(.cancelTimer(.memoryCheck))
            }
        }
    }

    /// Forgets a window under way (memory fell back, the process ends or is replaced).
    mutating func clearMemoryWatch(into actions: inout [InstanceAction]) {
        memoryAboveSince = nil
        memoryRestartDue = false
        if memoryCheckArmed {
            memoryCheckArmed = false
            actions.append(.cancelTimer(.memoryCheck))
        }
    }
}
