import Glibc
import RingmasterCore
import Systemd

/// The runtime side of `pre-start` (the core decides: InstanceMachine+PreStart.swift): the
/// command runs as the instance would (environment, directory, cgroup, log stream; no
/// sockets), in its own process group, which the instance's `signal` and `killAll` reach
/// while it runs; its end comes back through its pidfd on the loop, never waited for.
extension Supervisor {
    func startPreStart(slot: ServiceSlot, index: Int, process: InstanceProcess) -> InstanceEvent {
        let cfg = slot.machine.config.forInstance(index)
        let label = "\(cfg.name).\(index)"
        process.reset()
        let child: SpawnedProcess
        switch launch(cfg, index: index, argv: cfg.preStart, withSockets: false, label: label, process: process) {
        case let .success(spawned): child = spawned
        case let .failure(failure): return preStartFailed(label, slot: slot, index: index, reason: failure.reason)
        }
        process.pgid = child.pid // setsid() in the child
        process.preStartPid = child.pid
        process.cgroup?.releaseDirectory()
        switch watch(child, { [weak self, unowned slot] exit in self?.preStartExited(exit, slot: slot, index: index) }) {
        case let .success(source): process.child = source
        case let .failure(failure):
            process.preStartPid = nil
            return preStartFailed(label, slot: slot, index: index, reason: failure.reason)
        }
        log.write(LogEvent(.info, "pre-start", "\(label): pre-start running (pid \(child.pid))",
                           service: cfg.name, instance: index, pid: child.pid))
        return .preStartSpawned(pid: child.pid)
    }

    private func preStartFailed(_ label: String, slot: ServiceSlot, index: Int, reason: String) -> InstanceEvent {
        slot.processes[index]?.reset()
        log.write(LogEvent(.err, "pre-start-failed", "\(label): pre-start: \(reason)", service: slot.name, instance: index))
        return .preStartFailed(reason: reason)
    }

    private func preStartExited(_ exit: ChildExit, slot: ServiceSlot, index: Int) {
        guard let process = slot.processes[index], process.preStartPid == exit.pid else { return }
        let status = ExitStatus(exit)
        process.preStartPid = nil
        process.child = nil
        let stopping = slot.instanceState(index) == .stopping
        var e = LogEvent(status.isSuccess || stopping ? .info : .warning, "pre-start-exited",
                         "\(slot.name).\(index): pre-start (pid \(exit.pid)) \(status)",
                         service: slot.name, instance: index, pid: exit.pid)
        e.exit = .init(code: status.code.rawValue, status: status.status)
        log.write(e)
        handle(.preStartExited(status), instance: index, of: slot)
    }
}
