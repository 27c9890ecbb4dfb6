import Glibc
import RingmasterCore

/// Why a control command (D-Bus, ringctl) was refused; `BusService` maps each case to its
/// io.ringmaster.Ringmaster1.Error name.
public enum ControlError: Error, Equatable, CustomStringConvertible {
    case noSuchService(String)
    case invalidArgument(String)
    case failed(String)

    public var description: String {
        switch self {
        case let .noSuchService(name): return "no service named \"\(name)\""
        case let .invalidArgument(message), let .failed(message): return message
        }
    }
}

/// The most instances `ScaleService` accepts (as many as a config file may ask for).
public let maximumScaledInstances = 10_000

/// The commands a control client can give, per service. Each changes only what is wanted
/// (through the service machine) and lets process and timer events do the rest; each
/// returns as soon as the change is under way.
extension Supervisor {
    public func requireSlot(_ name: String) throws(ControlError) -> ServiceSlot {
        guard let slot = slot(named: name) else { throw .noSuchService(name) }
        return slot
    }

    private func refuseWhileShuttingDown() throws(ControlError) {
        if isShuttingDown { throw .failed("ringmasterd is shutting down") }
    }

    /// Wants the service up; it starts once its dependencies are settled (as at boot).
    /// A failed service is given a fresh start (its start limit is reset).
    public func startService(_ name: String) throws(ControlError) {
        try refuseWhileShuttingDown()
        let slot = try requireSlot(name)
        slot.pendingStop = false
        slot.pendingStart = true
        reconcile()
    }

    /// Wants the service down: every instance gets its stop signal (highest number first).
    public func stopService(_ name: String) throws(ControlError) {
        try refuseWhileShuttingDown()
        let slot = try requireSlot(name)
        slot.pendingStart = false
        perform(slot.machine.stop(now: now), on: slot)
        reconcile()
    }

    /// Changes the number of instances: new ones start if the service is wanted up; the
    /// highest numbers stop first and disappear once down.
    public func scaleService(_ name: String, to count: Int) throws(ControlError) {
        try refuseWhileShuttingDown()
        let slot = try requireSlot(name)
        guard (1...maximumScaledInstances).contains(count) else {
            throw .invalidArgument("instances must be between 1 and \(maximumScaledInstances), not \(count) (to stop every instance, stop the service)")
        }
        perform(slot.machine.scale(to: count, now: now), on: slot)
        reconcile()
    }

    /// Sends `signal` to every process group of the service's instances. Changes nothing
    /// that is wanted: the exits it causes are handled like any other.
    public func killService(_ name: String, signal: Int32) throws(ControlError) {
        let slot = try requireSlot(name)
        guard signal >= 1, signal <= Signals.realtimeMaximum else {
            throw .invalidArgument("\(signal) is not a signal number (1…\(Signals.realtimeMaximum))")
        }
        let groups = slot.processes.keys.sorted().compactMap { slot.processes[$0]?.pgid }
        guard !groups.isEmpty else { throw .failed("\(name) has no process to signal") }
        for pgid in groups { _ = kill(-pgid, signal) }
        log.write(LogEvent(.info, "killed", "\(name): sent \(Signals.description(of: signal)) to \(groups.count) process group\(groups.count == 1 ? "" : "s") on request",
                           service: name))
    }

    /// Replaces instance `index` with a fresh process (stop, then start).
    func restartInstance(_ index: Int, of slot: ServiceSlot) {
        perform(slot.machine.restartInstance(index, now: now), on: slot)
        reconcile()
    }

    /// Stops every instance and starts them again (a single instance, or a service that is
    /// not up: `RollingRestart` handles the rest).
    func restartAllInstances(of slot: ServiceSlot) {
        slot.pendingStop = false
        perform(slot.machine.restart(now: now), on: slot)
        reconcile()
    }

    /// `scale` without the range check: the rolling restart's temporary extra instance.
    func setInstanceCount(_ count: Int, of slot: ServiceSlot) {
        perform(slot.machine.scale(to: count, now: now), on: slot)
        reconcile()
    }
}
