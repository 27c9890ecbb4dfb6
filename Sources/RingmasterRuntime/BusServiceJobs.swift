import RingmasterCore
import Systemd

/// The methods that reply when their change is done (docs/dbus.md, "Waiting for a result"):
/// `StartServiceAndWait`, `StopServiceAndWait`, `RestartServiceAndWait`, `ScaleServiceAndWait`
/// and `ReloadAndWait`. Each gives the command a job id; the core reports the job's end
/// (`.jobFinished`) and the reply goes out then: empty for success, the error `JobFailed`
/// with one line for a failure. A refused command is answered at once, as by the plain
/// methods. Rollbacks of a reload's change are announced as `Reloaded(false, …)`.
extension BusService {
    func jobMethods() -> [BusMethod] {
        let name = BusArgument("name", "s")
        func waiting(_ member: String, extra: [BusArgument] = [],
                     _ body: @escaping (BusService, String, BusMessage, JobID) throws(ControlError) -> Void) -> BusMethod {
            BusMethod(member, in: [name] + extra) { [unowned self] call in
                let service = try call.message.readString()
                try self.authorize(call)
                let job = self.supervisor.allocateJobID()
                self.pendingJobs[job] = BusDeferredReply(call)
                do throws(ControlError) {
                    try body(self, service, call.message, job)
                } catch {
                    self.pendingJobs[job] = nil
                    throw BusService.busError(error)
                }
                throw BusDeferredReply.Later()
            }
        }
        return [
            waiting("StartServiceAndWait") { s, service, _, job throws(ControlError) in try s.supervisor.startService(service, job: job) },
            waiting("StopServiceAndWait") { s, service, _, job throws(ControlError) in try s.supervisor.stopService(service, job: job) },
            waiting("RestartServiceAndWait") { s, service, _, job throws(ControlError) in try s.supervisor.restartService(service, job: job) },
            waiting("ScaleServiceAndWait", extra: [BusArgument("instances", "u")]) { s, service, m, job throws(ControlError) in
                guard let count = try? m.readUInt32() else { throw .invalidArgument("missing instances") }
                try s.supervisor.scaleService(service, to: Int(clamping: count), job: job)
            },
            BusMethod("ReloadAndWait") { [unowned self] call in
                try self.authorize(call)
                if self.daemon.state == .stopping { throw BusService.busError(.shuttingDown) }
                let job = self.supervisor.allocateJobID()
                self.pendingJobs[job] = BusDeferredReply(call)
                switch self.daemon.reload(job: job) {
                case .success:
                    throw BusDeferredReply.Later()
                case let .failure(errors):
                    self.pendingJobs[job] = nil
                    throw BusError(RingmasterBus.ErrorName.invalidConfig, errors.description)
                }
            },
        ]
    }

    /// Wires the supervisor's job results and rollbacks to the waiting callers and signals.
    func wireJobs() {
        supervisor.onJobFinished = { [weak self] job, result in self?.jobFinished(job, result) }
        let previous = supervisor.onRolledBack
        supervisor.onRolledBack = { [weak self] service, reason, restored in
            previous?(service, reason, restored)
            if restored { self?.emit("Reloaded", [.bool(false), .string("\(service) kept its old config: \(reason)")]) }
        }
    }

    private func jobFinished(_ job: JobID, _ result: JobResult) {
        guard let pending = pendingJobs.removeValue(forKey: job) else { return }
        do {
            switch result {
            case .done: try pending.reply()
            case let .failed(why): try pending.fail(BusError(RingmasterBus.ErrorName.jobFailed, why))
            }
        } catch {
            supervisor.log.write(LogEvent(.warning, "dbus", "D-Bus: cannot answer \(job): \(error)"))
        }
    }
}
