import Glibc
import RingmasterCore

/// What the runtime learns about an instance's health from its cgroup, for the core to decide
/// on: OOM kills (memory.events `oom_kill`).
extension Supervisor {
    /// Before the spawn of an instance with a memory limit (whose cgroup has memory.events):
    /// its cgroup's OOM-kill count so far (a cgroup is reused by the next process of the
    /// instance while the last one's is not yet removed). Nothing for other services.
    func noteOOMBaseline(_ process: InstanceProcess, limits: ResourceLimits) {
        process.oomKillsAtSpawn = nil
        guard limits.memoryMax != nil || limits.memoryHigh != nil, let cgroup = process.cgroup else { return }
        process.oomKillsAtSpawn = cgroup.oomKills ?? 0
    }

    /// An instance's process was SIGKILLed: if its cgroup counts an OOM kill since the spawn,
    /// tell the core (`causeNoted(.oomKill)`) before it handles the exit. (The kernel counts the
    /// kill in memory.events as it sends the SIGKILL, before the victim can exit.)
    func noteOOMKill(_ status: ExitStatus, process: InstanceProcess, slot: ServiceSlot, index: Int) {
        guard status.code == .killed, status.status == SIGKILL, let before = process.oomKillsAtSpawn,
              let cgroup = process.cgroup, let now = cgroup.oomKills, now > before else { return }
        process.oomKillsAtSpawn = now
        handle(.causeNoted(.oomKill), instance: index, of: slot)
    }
}
