import Glibc
import RingmasterCore

/// Why a control command (D-Bus, ringctl) was refused: the core's rules decide.
public typealias ControlError = CommandError

/// The commands a control client can give, per service. The core changes what is wanted and
/// returns the first actions; process and timer events do the rest. Each returns as soon as
/// the change is under way.
extension Supervisor {
    /// Wants the service up; it starts once its dependencies are settled (as at boot).
    /// A failed service is given a fresh start (its start limit is reset).
    public func startService(_ name: String, job: JobID? = nil) throws(ControlError) {
        run(try stack.start(name, now: now, job: job))
    }

    /// Wants the service down: every instance gets its stop signal (highest number first).
    public func stopService(_ name: String, job: JobID? = nil) throws(ControlError) {
        run(try stack.stop(name, now: now, job: job))
    }

    /// Every process replaced: rolling (surge by one) when several instances are up.
    public func restartService(_ name: String, job: JobID? = nil) throws(ControlError) {
        run(try stack.restart(name, now: now, job: job))
    }

    /// Changes the number of instances (0 included): new ones start if the service is up;
    /// the highest numbers stop first and disappear once down.
    public func scaleService(_ name: String, to count: Int, job: JobID? = nil) throws(ControlError) {
        run(try stack.scale(name, to: count, now: now, job: job))
    }

    /// Sends `signal` to every process group of the service's instances. Changes nothing
    /// that is wanted: the exits it causes are handled like any other.
    public func killService(_ name: String, signal: Int32) throws(ControlError) {
        let id = try stack.checkKill(name, signal: signal)
        guard let slot = slots[id] else { throw .noSuchService(name) }
        let groups = slot.processes.keys.sorted().compactMap { slot.processes[$0]?.pgid }
        guard !groups.isEmpty else { throw .failed("\(name) has no process to signal") }
        for pgid in groups { _ = kill(-pgid, signal) }
        log.write(LogEvent(.info, "killed", "\(name): sent \(Signals.description(of: signal)) to \(groups.count) process group\(groups.count == 1 ? "" : "s") on request",
                           service: name))
    }

    /// Before `start`: what a previous daemon's commands changed, as far as the core keeps it.
    func restore(_ changes: [RuntimeChange]) -> [StackNote] { stack.restore(changes) }
}

extension Supervisor {
    /// Sends the service's `reload-signal` to each instance's main process (not its group:
    /// a server's master re-reads its config and manages its workers itself). Restarts nothing.
    public func reloadService(_ name: String) throws(ControlError) {
        let (signal, targets) = try stack.reloadTargets(name)
        for target in targets { _ = kill(target.pid, signal) } // our unreaped child: the pid is its
        log.write(LogEvent(.info, "reload-signal", "\(name): sent \(Signals.description(of: signal)) to \(targets.count) main process\(targets.count == 1 ? "" : "es") on request",
                           service: name))
    }
}
