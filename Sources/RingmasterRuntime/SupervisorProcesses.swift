import Glibc
import RingmasterCore
import Systemd

/// The supervisor's hands on processes: spawning an instance with its notify socket, cgroup
/// and log stream, watching it exit, reading what it notifies. Each turns into an
/// `InstanceEvent` for the core.
extension Supervisor {
    func spawn(slot: ServiceSlot, index: Int, process: InstanceProcess) -> InstanceEvent {
        let cfg = slot.machine.config.forInstance(index)  // placeholders filled for this instance
        let label = "\(cfg.name).\(index)"
        process.reset()
        let child: SpawnedProcess
        switch launch(cfg, index: index, argv: cfg.resolvedCommand, withSockets: true, label: label, process: process,
                      memoryWatchFor: slot) {
        case let .success(spawned): child = spawned
        case let .failure(failure): return spawnFailed(label, slot: slot, index: index, reason: failure.reason)
        }
        process.pid = child.pid
        process.pgid = child.pid // setsid() in the child: its own session and process group
        instanceByPID[child.pid] = (slot.id, index)
        if let cgroup = process.cgroup {
            instanceByCgroup[cgroup.path] = (slot.id, index)
            cgroup.releaseDirectory() // the process is in it: no descriptor kept per instance
        }
        switch watch(child, { [weak self, unowned slot] exit in self?.childExited(exit, slot: slot, index: index) }) {
        case let .success(source): process.child = source
        case let .failure(failure): return spawnFailed(label, slot: slot, index: index, reason: failure.reason)
        }
        log.write(LogEvent(.info, "spawned", "\(label) started (pid \(child.pid))",
                           service: cfg.name, instance: index, pid: child.pid))
        let pid = child.pid
        log.afterHold { [weak self] in self?.onProcessEvent?(slot, index, .started(pid: pid)) }
        return .spawned(pid: child.pid)
    }

    struct LaunchFailure: Error { var reason: String }

    /// Starts `argv` as instance `index` of `cfg` runs: its environment, directory, cgroup
    /// (made or reused, limits written; kept in `process.cgroup`) and log stream; the
    /// service's sockets only `withSockets` (the main process, not a pre-start), and the
    /// `memory-restart` watch of its cgroup only for the main process of `memoryWatchFor`.
    func launch(_ cfg: ServiceConfig, index: Int, argv: [String], withSockets: Bool, label: String,
                process: InstanceProcess, memoryWatchFor slot: ServiceSlot? = nil) -> Result<SpawnedProcess, LaunchFailure> {
        let notify: NotifySocket
        do {
            notify = try sharedNotifySocket()
        } catch {
            return .failure(LaunchFailure(reason: "notify socket: \(error)"))
        }

        var request = SpawnRequest(argv: [], environment: [], listenPID: withSockets && !cfg.sockets.isEmpty,
                                   workingDirectory: nil, stdin: environment.devNull, stdout: 2, stderr: 2,
                                   extraFDs: [], journalIdentifier: nil)
        request.argv = argv
        if withSockets { request.extraFDs = cfg.sockets.compactMap { sockets[$0] } }
        request.environment = environment.forChild(service: cfg, instance: index, notifySocket: notify.address)
        request.workingDirectory = environment.workingDirectory(for: cfg)
        request.nofileSoftLimit = environment.nofileSoftLimit
        request.watchdogPID = cfg.watchdog != nil
        if let cgroups {
            do {
                let cgroup = try cgroups.instance(service: cfg.name, index: index, limits: cfg.limits)
                process.cgroup = cgroup
                request.cgroupFD = cgroup.fd
                noteOOMBaseline(process, limits: cfg.limits)
            } catch {
                return .failure(LaunchFailure(reason: "cgroup: \(error)"))
            }
        } else if let problem = CgroupTree.limitsProblemWithoutCgroup(cfg.limits) {
            return .failure(LaunchFailure(reason: problem))
        }
        if let slot, let problem = watchMemory(process, slot: slot, index: index, config: cfg) {
            return .failure(LaunchFailure(reason: problem))
        }

        var writeEnd: Int32 = -1
        switch log.target {
        case .journal:
            request.journalIdentifier = cfg.name
        case .console:
            do {
                // The reader lives on its own (ConsoleSink.shared.readers) until EOF.
                let fd = try ConsoleOutput.open(loop: loop, label: label)
                writeEnd = fd
                request.stdout = fd
                request.stderr = fd
            } catch {
                return .failure(LaunchFailure(reason: "\(error)"))
            }
        }
        defer { if writeEnd >= 0 { close(writeEnd) } }

        do {
            return .success(try spawner.spawn(request))
        } catch {
            return .failure(LaunchFailure(reason: "\(error)"))
        }
    }

    /// Watches the child's pidfd on the loop; a child that cannot be watched is killed, not
    /// left running unwatched.
    func watch(_ child: SpawnedProcess, _ handler: @escaping (ChildExit) -> Void) -> Result<EventSource, LaunchFailure> {
        do {
            return .success(try loop.watchChild(pidfd: child.pidfd, handler: handler))
        } catch {
            _ = kill(-child.pid, SIGKILL)
            close(child.pidfd)
            return .failure(LaunchFailure(reason: "watching pid \(child.pid): \(error)"))
        }
    }

    func spawnFailed(_ label: String, slot: ServiceSlot, index: Int, reason: String) -> InstanceEvent {
        slot.processes[index]?.reset()
        slot.processes[index]?.noteEnd(pid: nil)
        var e = LogEvent(.err, "spawn-failed", "\(label): \(reason)", service: slot.name, instance: index)
        e.exitReason = ExitReason.spawn.rawValue
        log.write(e)
        return .spawnFailed(reason: reason)
    }

    private func childExited(_ exit: ChildExit, slot: ServiceSlot, index: Int) {
        guard let process = slot.processes[index], process.pid == exit.pid else { return }
        // Hold what this exit announces; if it makes a restart due, keep holding until the
        // restart timer has spawned the replacement, in the next iteration: the timer goes
        // first among what is ready then (priority -1), the defer source that ends the hold
        // in any case after it. (That priority cannot starve other sources: the timer is due
        // again only after another exit was dispatched at the normal priority.)
        holdAnnouncements()
        restartDue = false
        defer {
            if restartDue, restartHold == nil, let timer = slot.processes[index]?.timers[.restart],
               (try? timer.setPriority(-1)) != nil,
               let backstop = try? loop.onDefer(handler: { [weak self] in self?.endRestartHold() }) {
                restartHold = backstop
            } else {
                releaseAnnouncements()
            }
            restartDue = false
        }
        let status = ExitStatus(exit)
        noteOOMKill(status, process: process, slot: slot, index: index)
        unwatchMemory(process)
        process.pid = nil
        process.child = nil
        process.noteEnd(pid: exit.pid)
        instanceByPID[exit.pid] = nil
        // (No copy of the instances may live across `handle`: the core's next change of them
        // would then copy all of them, 10,000 on a large service, on every exit.)
        let expected = slot.instanceState(index) == .stopping
        var e = LogEvent(status.isSuccess || expected ? .info : .warning, "exited",
                         "\(slot.name).\(index) (pid \(exit.pid)) \(status)",
                         service: slot.name, instance: index, pid: exit.pid)
        e.exit = .init(code: status.code.rawValue, status: status.status)
        // the core's reason for this end (what it keeps as lastExitReason once it handles it)
        e.exitReason = stack.exitReason(slot.id, index, for: status)?.rawValue
        log.write(e)
        let pid = exit.pid
        log.afterHold { [weak self] in self?.onProcessEvent?(slot, index, .exited(pid: pid, status)) }
        handle(.processExited(status), instance: index, of: slot)
    }

    /// The daemon's notify socket, made at the first spawn: one descriptor for every instance.
    private func sharedNotifySocket() throws -> NotifySocket {
        if let notifySocket { return notifySocket }
        let socket = try NotifySocket()
        notifySource = try loop.onReadable(fd: socket.fd) { [weak self] _ in self?.notifyReadable() }
        notifySocket = socket
        return socket
    }

    /// Each message counts for the instance its sender belongs to — found by its pid (the main
    /// process), its process group, its cgroup or an ancestor — and only if `acceptsNotify`
    /// (`NotifyAccess`) agrees: a process of another service, or any other process of the
    /// user, can neither mark an instance ready nor set its STATUS=.
    private func notifyReadable() {
        guard let notify = notifySocket else { return }
        // Attributed as each is read, while its sender is surely there (see receiveEach);
        // handled once all are read.
        var accepted: [(slot: ServiceSlot, index: Int, message: String)] = []
        notify.receiveEach { message, pid, uid in
            guard let (id, index) = instance(sending: pid, uid: uid), let slot = slots[id],
                  slot.processes[index]?.acceptsNotify(pid: pid, uid: uid) == true else { return }
            accepted.append((slot, index, message))
        }
        for (slot, index, message) in accepted {
            for line in message.split(separator: "\n") {
                if line == "READY=1" {
                    handle(.readyNotified, instance: index, of: slot)
                } else if let watchdog = WatchdogMessage(notifyLine: line) {
                    handle(.watchdog(watchdog), instance: index, of: slot)
                } else if line.hasPrefix("STATUS=") {
                    slot.processes[index]?.status = String(line.dropFirst(7))
                    markChanged(slot)
                    onChange?()
                }
            }
        }
    }

    private func instance(sending pid: Int32, uid: UInt32) -> (ServiceID, Int)? {
        guard pid > 0 else { return nil }
        if let found = instanceByPID[pid] { return found }
        let sender = NotifySocket.sender(pid: pid, uid: uid, withCgroup: cgroups != nil)
        if let group = sender.processGroup, let found = instanceByPID[group] { return found }
        if var dir = sender.cgroup {
            // the instance's cgroup, or one below it
            while !dir.isEmpty {
                if let found = instanceByCgroup[dir] { return found }
                guard let slash = dir.lastIndex(of: "/") else { break }
                dir = String(dir[..<slash])
            }
        }
        return sender.ancestors.lazy.compactMap { self.instanceByPID[$0] }.first
    }
}

extension ExitStatus {
    init(_ exit: ChildExit) {
        switch exit.code {
        case Int32(CLD_KILLED): self = .killed(exit.status)
        case Int32(CLD_DUMPED): self.init(code: .dumped, status: exit.status)
        default: self = .exited(exit.status)
        }
    }
}
