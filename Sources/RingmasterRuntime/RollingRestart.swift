import RingmasterCore
import Systemd

/// A rolling restart of one service with N > 1 instances, "surge by one", so that the
/// service never has fewer than N ready processes on its shared socket:
///
///   1. surge:   scale to N+1; wait until the extra instance (number N) is ready;
///   2. replace: for i in 0..<N, restart instance i (stop-signal, then a fresh process as
///               soon as the old one is gone) and wait until it is ready again;
///   3. shrink:  scale back to N (the extra instance stops).
///
/// Every old process is stopped only once a new process is ready to take its share: first
/// the surge instance, then each fresh instance covers the next one's stop. "Ready" is the
/// service's `ready` mode: READY=1 for `notify`, exec'd for `started`. Every pid of the
/// service is replaced; the extra instance runs with RINGMASTER_INSTANCE=N meanwhile.
///
/// If an instance fails (gives up) during the restart, the restart is abandoned and the
/// service scaled back to N; `ServiceStateChanged`/`ProcessExited` tell the story.
///
/// Driven by `advance()` after each change of the supervisor (never from inside its
/// reconcile: `RollingRestarts` defers it to the next loop iteration).
final class RollingRestart {
    enum Phase: Equatable {
        case surging
        case replacing(index: Int, oldPID: Int32?)
        case done
    }

    let slot: ServiceSlot
    /// the number of instances before and after
    let target: Int
    private(set) var phase: Phase = .surging
    private unowned let supervisor: Supervisor

    private init(supervisor: Supervisor, slot: ServiceSlot, target: Int) {
        self.supervisor = supervisor
        self.slot = slot
        self.target = target
    }

    /// Starts a restart of `slot`: rolling when it has several instances up, else a plain
    /// stop-then-start. Returns the rolling restart to drive, or nil when nothing is left to do.
    static func begin(_ slot: ServiceSlot, supervisor: Supervisor) -> RollingRestart? {
        let machine = slot.machine
        let target = machine.wantedInstances
        let up = machine.instances.contains { $0.state == .running || $0.state == .starting }
        guard target > 1, machine.wanted, up, machine.instances.count == target else {
            supervisor.restartAllInstances(of: slot)
            return nil
        }
        let restart = RollingRestart(supervisor: supervisor, slot: slot, target: target)
        supervisor.log.write(LogEvent(.info, "rolling-restart",
                                      "\(slot.name): rolling restart of \(target) instances (one extra instance meanwhile)",
                                      service: slot.name))
        supervisor.setInstanceCount(target + 1, of: slot)
        return restart
    }

    /// Takes the next step if the current one is complete. Returns false once finished.
    @discardableResult
    func advance() -> Bool {
        let instances = slot.machine.instances
        switch phase {
        case .done:
            return false
        case .surging:
            guard instances.count == target + 1 else { return abandon("instances changed during the restart") }
            let extra = instances[target]
            if extra.state == .failed { return abandon("the extra instance \(slot.name).\(target) failed") }
            if extra.state == .running { replace(0) }
        case let .replacing(index, oldPID):
            guard instances.count > index else { return abandon("instances changed during the restart") }
            let instance = instances[index]
            if instance.state == .failed { return abandon("\(slot.name).\(index) failed") }
            if instance.state == .running, instance.pid != oldPID {
                if index + 1 < target { replace(index + 1) } else { finish() }
            }
        }
        return phase != .done
    }

    /// Stops driving; with `scaleBack`, removes the extra instance if it is still there.
    func cancel(scaleBack: Bool) {
        guard phase != .done else { return }
        phase = .done
        if scaleBack, slot.machine.wantedInstances == target + 1 {
            supervisor.setInstanceCount(target, of: slot)
        }
    }

    private func replace(_ index: Int) {
        phase = .replacing(index: index, oldPID: slot.machine.instances[index].pid)
        supervisor.restartInstance(index, of: slot)
    }

    private func finish() {
        phase = .done
        supervisor.setInstanceCount(target, of: slot)
        supervisor.log.write(LogEvent(.info, "rolling-restart", "\(slot.name): rolling restart done", service: slot.name))
    }

    private func abandon(_ why: String) -> Bool {
        supervisor.log.write(LogEvent(.warning, "rolling-restart", "\(slot.name): rolling restart abandoned: \(why)",
                                      service: slot.name))
        cancel(scaleBack: true)
        return false
    }
}

/// The rolling restarts under way, one per service at most. Call `supervisorChanged()`
/// after every change (it runs the next steps on the next loop iteration, outside the
/// supervisor's reconcile); other commands on a service `cancel` its restart first.
public final class RollingRestarts {
    private unowned let supervisor: Supervisor
    private var active: [String: RollingRestart] = [:]
    private var pending: EventSource?

    public init(supervisor: Supervisor) { self.supervisor = supervisor }

    /// Restarts the service (rolling if it has several instances up). A restart already
    /// under way for it continues: it replaces every process anyway.
    public func restart(_ name: String) throws(ControlError) {
        if supervisor.isShuttingDown { throw .failed("ringmasterd is shutting down") }
        let slot = try supervisor.requireSlot(name)
        if let current = active[name], current.slot === slot, current.phase != .done { return }
        active[name] = RollingRestart.begin(slot, supervisor: supervisor)
        supervisorChanged()
    }

    /// Abandons the service's rolling restart (before a stop, a scale, a reload of it).
    /// With `scaleBack`, the extra instance is removed.
    public func cancel(_ name: String, scaleBack: Bool) {
        active.removeValue(forKey: name)?.cancel(scaleBack: scaleBack)
    }

    /// The number of instances the service will have once its rolling restart is done.
    public func targetInstances(of name: String) -> Int? {
        active[name].flatMap { $0.phase == .done ? nil : $0.target }
    }

    public var isEmpty: Bool { active.isEmpty }

    /// Stops driving every restart, leaving the instance counts as they are (after a reload,
    /// which set them).
    public func cancelAll() {
        for restart in active.values { restart.cancel(scaleBack: false) }
        active.removeAll()
    }

    /// Schedules one `advance()` of every restart for the next loop iteration.
    public func supervisorChanged() {
        guard !active.isEmpty, pending == nil else { return }
        pending = try? supervisor.loop.onDefer { [weak self] in
            guard let self else { return }
            self.pending = nil
            self.advanceAll()
        }
    }

    private func advanceAll() {
        for (name, restart) in active {
            // A reload may have replaced the slot: the old restart is moot.
            guard supervisor.slot(named: name) === restart.slot else {
                active[name] = nil
                continue
            }
            if !restart.advance() { active[name] = nil }
        }
    }
}
