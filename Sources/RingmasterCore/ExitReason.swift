// Why a process ended: one reason per end (SPEC "Exit reasons"), shown by `ringctl status`,
// logged as RINGMASTER_EXIT_REASON= and published as the Service property LastExitReason.

public enum ExitReason: String, Equatable, Hashable, Sendable, CaseIterable {
    /// it exited by itself (any status, 0 included)
    case exitCode = "exit-code"
    /// a signal ended it (a stop signal, a kill from outside)
    case signal
    /// a signal ended it and it dumped core
    case coreDump = "core-dump"
    /// the kernel's OOM killer ended it inside its cgroup (memory.events oom_kill)
    case oomKill = "oom-kill"
    /// it missed its WATCHDOG=1 deadline and was aborted
    case watchdog
    /// its liveness probe failed `failures` times in a row
    case liveness
    /// it was not ready within `ready-timeout`
    case readyTimeout = "ready-timeout"
    /// its `pre-start` command failed
    case preStart = "pre-start"
    /// it could not be spawned (exec failed, cgroup refused)
    case spawn
    /// its memory stayed above `memory-restart`
    case memoryRestart = "memory-restart"

    /// The reason a process end has when nothing but its status is known.
    public init(status: ExitStatus) {
        switch status.code {
        case .exited: self = .exitCode
        case .killed: self = .signal
        case .dumped: self = .coreDump
        }
    }
}
