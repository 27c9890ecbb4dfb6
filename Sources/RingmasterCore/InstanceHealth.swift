// The result of an instance's probes, as the per-instance view shows it (SPEC "Per-instance
// view": `health`). nil (shown as "") while the service has no probe or none has run yet
// for the current process.

public enum InstanceHealth: String, Equatable, Hashable, Sendable, CaseIterable {
    /// the last probe of the current process passed
    case passing
    /// the last probe of the current process failed (fewer than `failures` times in a row, or
    /// the instance is being replaced for it)
    case failing
}
