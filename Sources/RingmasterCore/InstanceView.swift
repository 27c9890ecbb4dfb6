// What the per-instance view (SPEC "Per-instance view", `ringctl status NAME --instances`,
// `ringctl why`) shows of one instance, read off the core's machines. Pure: the runtime adds
// what only it knows (the pid that ended last, wall-clock times, CPU and memory).

/// One instance as the view shows it. Times are the core's (monotonic µs).
public struct InstanceView: Equatable, Sendable {
    public var instance: Int
    public var pid: Int32?
    public var state: InstanceState
    public var health: InstanceHealth?
    public var restarts: Int
    public var lastExitReason: ExitReason?
    public var lastExit: ExitStatus?
    /// when the current process was spawned
    public var startedAt: USec?
    /// when the restart timer fires, while the instance backs off
    public var restartAt: USec?
    /// why the instance is failed, when it is
    public var failureReason: String?
}

extension InstanceMachine {
    /// This instance for the view.
    public var view: InstanceView {
        InstanceView(instance: index, pid: pid, state: state, health: health, restarts: restarts,
                     lastExitReason: lastExitReason, lastExit: lastExit, startedAt: startedAt,
                     restartAt: restartAt, failureReason: failureReason)
    }
}

extension ExitStatus {
    /// The status without the words the reason already says: "status 3", "killed by SIGKILL",
    /// "dumped core on SIGSEGV".
    public var brief: String {
        code == .exited ? "status \(status)" : description
    }
}

/// "signal (killed by SIGKILL)", "exit-code (status 3)": a reason with the status it came
/// with, as D-Bus gives them (`LastExitReason`, `LastExitCode`, `LastExitStatus`); "" before
/// any exit. An unknown code is shown as it came.
public func exitSummary(reason: String, code: String, status: Int32) -> String {
    guard !reason.isEmpty || !code.isEmpty else { return "" }
    let detail = ExitStatus.Code(rawValue: code).map { ExitStatus(code: $0, status: status).brief }
        ?? (code.isEmpty ? "" : "\(code) \(status)")
    if reason.isEmpty { return detail }
    return detail.isEmpty ? reason : "\(reason) (\(detail))"
}

extension ResourceLimits {
    /// The limits as config keys and values ("memory-max", "64M"), in the order of
    /// docs/config.md: what `ringctl why` shows an instance ran under.
    public var configEntries: [(key: String, value: String)] {
        var out: [(key: String, value: String)] = []
        if let memoryMax { out.append(("memory-max", memoryMax.description)) }
        if let memoryHigh { out.append(("memory-high", memoryHigh.description)) }
        if let cpuWeight { out.append(("cpu-weight", String(cpuWeight))) }
        if let cpuQuota {
            let hundredths = cpuQuota &* 10_000 / Self.cpuPeriod
            let fraction = hundredths % 100
            out.append(("cpu-max", "\(hundredths / 100)" + (fraction == 0 ? "" : fraction % 10 == 0 ? ".\(fraction / 10)"
                                                                                              : fraction < 10 ? ".0\(fraction)" : ".\(fraction)") + "%"))
        }
        if let pidsMax { out.append(("pids-max", String(pidsMax))) }
        return out
    }
}
