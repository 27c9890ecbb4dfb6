import Glibc
import RingmasterCore
import Systemd

/// The imperative shell around the pure core: it feeds process, timer and notify events into
/// the service machines and performs the actions they return (spawn, signal, timers).
/// Everything runs on the one sd-event loop; nothing here blocks or polls.
public final class Supervisor {
    public let loop: EventLoop
    public let log: EventLog
    public private(set) var config: Config
    let spawner: Spawner
    let environment: ChildEnvironment
    /// the listening sockets by config name (owned by the Daemon's SocketSet)
    var sockets: [String: Int32] = [:]
    /// the delegated cgroup subtree (CgroupTree.takeOver()), or nil: process groups only
    public var cgroups: CgroupTree?
    private(set) var slots: [ServiceSlot] = [] {
        didSet { slotsByName = Dictionary(slots.lazy.filter { !$0.retiring }.map { ($0.name, $0) }) { $1 } }
    }
    /// The services not being removed, by name: D-Bus property reads look a service up for
    /// every property, so a scan would make GetManagedObjects O(services²).
    private var slotsByName: [String: ServiceSlot] = [:]
    private(set) var shuttingDown = false
    public var isShuttingDown: Bool { shuttingDown }
    private var onStopped: (() -> Void)?
    /// called after every change of state (STATUS=, D-Bus properties)
    public var onChange: (() -> Void)?
    /// called as a process of an instance starts (exec'd) and as it ends, in that order — exact,
    /// even for an instance that a scale-down drops in the same step (after the step, with the
    /// other announcements: see `holdAnnouncements`)
    public var onProcessEvent: ((_ slot: ServiceSlot, _ instance: Int, _ event: ProcessEvent) -> Void)?
    /// services that changed since the last `takeChangedSlots()` (the D-Bus layer diffs only these)
    private var changedSlots: [ObjectIdentifier: ServiceSlot] = [:]
    private var reconciling = false
    private var reconcileAgain = false
    /// a change (`onChange`) is waiting for the end of the current hold
    private var changePending = false
    /// set by `perform` when it arms a restart timer that is already due
    private var restartDue = false
    /// The hold an exit keeps until the restart it made due has spawned (see `childExited`),
    /// and the defer source that ends it in the next iteration should that restart not come.
    private var restartHold: EventSource?

    public init(config: Config, loop: EventLoop, log: EventLog, spawner: Spawner = PosixSpawner(),
                environment: ChildEnvironment) {
        self.config = config
        self.loop = loop
        self.log = log
        self.spawner = spawner
        self.environment = environment
        self.slots = config.services.map { ServiceSlot(config: $0) }
        slotsByName = Dictionary(slots.map { ($0.name, $0) }) { $1 } // didSet does not run in init
    }


    public var now: USec { loop.now }

    func markChanged(_ slot: ServiceSlot) { changedSlots[ObjectIdentifier(slot)] = slot }

    /// The services whose state, processes or settings changed since the last call.
    public func takeChangedSlots() -> [ServiceSlot] {
        defer { changedSlots.removeAll(keepingCapacity: true) }
        return Array(changedSlots.values)
    }

    // MARK: - commands

    /// Starts every autostart service, each once its dependencies are ready.
    public func start() {
        holdAnnouncements()
        defer { releaseAnnouncements() }
        for slot in slots where slot.machine.config.autostart { slot.pendingStart = true }
        reconcile()
    }

    /// Stops everything in reverse dependency order, then calls `done`.
    public func shutdown(then done: @escaping () -> Void) {
        shuttingDown = true
        onStopped = done
        for slot in slots {
            slot.pendingStart = false
            slot.pendingStop = true
        }
        reconcile()
    }

    /// The services of the current config, in config order (not those a reload removed).
    public var services: [ServiceSlot] { slots.filter { !$0.retiring } }
    var allSlots: [ServiceSlot] { slots }

    /// A service of the current config by name.
    public func slot(named name: String) -> ServiceSlot? {
        // `retiring` is set (by a reload) before the slots are replaced: check it here too.
        slotsByName[name].flatMap { $0.retiring ? nil : $0 }
    }

    func replaceSlots(_ new: [ServiceSlot]) { slots = new }

    /// counts reloads applied and services removed: the set of services may have changed
    public private(set) var generation = 0

    func replaceConfig(_ new: Config, sockets new_: [String: Int32]) {
        generation += 1
        config = new
        sockets = new_
    }

    // MARK: - dependency order

    /// Who depends on whom, by name, built once per change of the set of services (a reload, a
    /// removal: `generation`), so that a pass over every service costs O(services), not
    /// O(services²), and no event pays for rebuilding it.
    private struct DependencyIndex {
        var byName: [String: ServiceSlot] = [:]
        var dependents: [String: [ServiceSlot]] = [:]
        /// every service, dependents before their dependencies (reverse start order), so a
        /// chain of services that are already down is stopped in one pass, not one per pass
        var stopOrder: [ServiceSlot] = []

        init(_ slots: [ServiceSlot]) {
            for slot in slots where !slot.retiring { byName[slot.name] = slot }
            for slot in slots {
                for name in slot.machine.config.after { dependents[name, default: []].append(slot) }
            }
            // Depth-first post-order over dependents (iterative: a chain may be thousands
            // long): a slot is placed after everything that depends on it.
            var placed = Set<ObjectIdentifier>()
            for root in slots where placed.insert(ObjectIdentifier(root)).inserted {
                var stack: [(slot: ServiceSlot, next: Int)] = [(root, 0)]
                while let (slot, next) = stack.last {
                    let children = dependents[slot.name] ?? []
                    if next < children.count {
                        stack[stack.count - 1].next += 1
                        let child = children[next]
                        if child !== slot, placed.insert(ObjectIdentifier(child)).inserted { stack.append((child, 0)) }
                    } else {
                        stack.removeLast()
                        stopOrder.append(slot)
                    }
                }
            }
        }

        func dependencies(of slot: ServiceSlot) -> [ServiceSlot] {
            slot.machine.config.after.compactMap { byName[$0] }
        }

        func dependents(of slot: ServiceSlot) -> [ServiceSlot] {
            (dependents[slot.name] ?? []).filter { $0 !== slot }
        }
    }

    private var cachedIndex: (generation: Int, index: DependencyIndex)?

    private func dependencyIndex() -> DependencyIndex {
        if let cached = cachedIndex, cached.generation == generation { return cached.index }
        let index = DependencyIndex(slots)
        cachedIndex = (generation, index)
        return index
    }

    /// Starts what waits on dependencies that are now settled, stops what waits on dependents
    /// that are now down, logs service-level transitions, and finishes a shutdown.
    func reconcile() {
        if reconciling { reconcileAgain = true; return }
        reconciling = true
        holdAnnouncements()
        defer {
            reconciling = false
            releaseAnnouncements()
        }
        repeat {
            reconcileAgain = false
            var progressed = false
            // Log what changed before acting on it: "db: starting -> running" comes before "app.0 started".
            for slot in slots { noteServiceState(slot) }
            let index = dependencyIndex()
            for slot in slots where slot.pendingStart && !shuttingDown {
                let waiting = index.dependencies(of: slot).filter { $0.pendingStart || !$0.machine.isSettled }
                if waiting.isEmpty {
                    slot.pendingStart = false
                    for dep in index.dependencies(of: slot) where dep.machine.state == .failed {
                        log.write(LogEvent(.warning, "dependency-failed",
                                           "\(slot.name): starting although its dependency \(dep.name) failed",
                                           service: slot.name))
                    }
                    perform(slot.machine.start(now: now), on: slot)
                    progressed = true
                }
            }
            for slot in index.stopOrder where slot.pendingStop {
                if index.dependents(of: slot).allSatisfy({ !$0.pendingStop && $0.machine.isDown }) {
                    slot.pendingStop = false
                    perform(slot.machine.stop(now: now), on: slot)
                    progressed = true
                }
            }
            // Services removed by a reload go once their processes are gone.
            if slots.contains(where: { $0.retiring && !$0.pendingStop && $0.machine.isDown }) {
                for slot in slots where slot.retiring && !slot.pendingStop && slot.machine.isDown {
                    noteServiceState(slot)
                    log.info("removed", "\(slot.name): removed", service: slot.name)
                    slot.onRemoved?()
                    cgroups?.removeService(slot.name)
                }
                slots.removeAll { $0.retiring && !$0.pendingStop && $0.machine.isDown }
                generation += 1
            }
            for slot in slots { noteServiceState(slot) }
            if progressed { reconcileAgain = true }
        } while reconcileAgain
        if shuttingDown, let done = onStopped, slots.allSatisfy({ !$0.pendingStop && $0.machine.isDown }) {
            onStopped = nil
            done()
        }
        changed()
    }

    private func noteServiceState(_ slot: ServiceSlot) {
        let state = slot.machine.state
        guard state != slot.loggedState else { return }
        markChanged(slot)
        let old = slot.loggedState
        slot.loggedState = state
        slot.stateChangedRealtime = realtimeNow()
        var message = "\(slot.name): \(old.rawValue) -> \(state.rawValue)"
        if state == .failed, let why = slot.machine.failureReason { message += " (\(why))" }
        log.write(LogEvent(state == .failed ? .err : .info, "state", message, service: slot.name))
    }

    // MARK: - announcements after the spawn

    /// While held, the daemon's journal entries, the D-Bus signals and, once at the end, the
    /// change (`onChange`: STATUS=, PropertiesChanged) wait, so that a spawn does not wait
    /// behind the sendmsg()s that wake journald, systemd and dbus-daemon (each may take the
    /// CPU from the daemon). Every step of the supervisor holds while it works (`perform`,
    /// `reconcile`), and a restart from the exit of the old process until the new one has
    /// spawned (`childExited`): what is announced, and its order, stay the same.
    func holdAnnouncements() { log.hold() }

    func releaseAnnouncements() {
        let change = log.holds == 1 && changePending
        if change { changePending = false }
        log.release()
        if change { onChange?() }
    }

    /// The supervisor changed: tell `onChange` now, or at the end of the hold.
    private func changed() {
        if log.holds > 0 { changePending = true } else { onChange?() }
    }

    /// Ends the hold an exit kept for its restart (after the restart's spawn, or in the next
    /// iteration at the latest).
    private func endRestartHold() {
        guard restartHold != nil else { return }
        restartHold = nil
        releaseAnnouncements()
    }

    // MARK: - events into the core, actions out

    func handle(_ event: InstanceEvent, instance: Int, of slot: ServiceSlot) {
        guard slots.contains(where: { $0 === slot }) || slot.retiring else { return }
        perform(slot.machine.handle(event, instance: instance, now: now), on: slot)
        reconcile()
    }

    func perform(_ actions: [ServiceAction], on slot: ServiceSlot) {
        if !actions.isEmpty { markChanged(slot) }
        holdAnnouncements()
        defer { releaseAnnouncements() }
        for a in actions {
            let process = slot.process(a.instance)
            let label = "\(slot.name).\(a.instance)"
            switch a.action {
            case .spawn:
                let event = spawn(slot: slot, index: a.instance, process: process)
                perform(slot.machine.handle(event, instance: a.instance, now: now), on: slot)
            case let .signal(signo):
                if let pgid = process.pgid { _ = kill(-pgid, signo) }
            case .killAll:
                // (sd-event reaps a child only after our exit handler returns, so the group still
                // exists here at least as the zombie leader: no pid reuse race.)
                if let pgid = process.pgid { _ = kill(-pgid, SIGKILL) }
                process.cgroup?.kill()   // the whole cgroup: setsid() grandchildren too
                if process.pid == nil {
                    process.pgid = nil
                    if let cgroup = process.cgroup { cgroups?.removeWhenEmpty(cgroup, loop: loop) }
                    process.cgroup = nil
                }
            case let .armTimer(timer, deadline):
                do {
                    // A restart fires on time: sd-event lets a timer fire as late as its
                    // accuracy allows (to coalesce wake-ups), and with the default 1 ms a
                    // zero restart-delay waited up to 1 ms in the loop for nothing.
                    let accuracy: UInt64 = timer == .restart ? 1 : 1_000
                    let source = try loop.timer(at: deadline, accuracy: accuracy) { [weak self, unowned slot] in
                        guard let self else { return }
                        slot.processes[a.instance]?.timers[timer] = nil
                        self.handle(.timerFired(timer), instance: a.instance, of: slot)
                        if timer == .restart { self.endRestartHold() }
                    }
                    if timer == .restart && deadline <= now { restartDue = true }
                    process.timers[timer] = source
                } catch {
                    log.error("timer", "\(label): cannot arm \(timer) timer: \(error)", service: slot.name)
                }
            case let .cancelTimer(timer):
                process.timers[timer] = nil
            case let .stateChanged(from, to):
                log.write(LogEvent(.debug, "instance-state", "\(label): \(from.rawValue) -> \(to.rawValue)",
                                   service: slot.name, instance: a.instance, pid: process.pid))
            case let .gaveUp(reason):
                log.write(LogEvent(.err, "gave-up", "\(label) gave up: \(reason)",
                                   service: slot.name, instance: a.instance))
            }
        }
        slot.dropProcesses(beyond: slot.machine.instances.count)
    }

    // MARK: - spawning

    private func spawn(slot: ServiceSlot, index: Int, process: InstanceProcess) -> InstanceEvent {
        let cfg = slot.machine.config
        let label = "\(cfg.name).\(index)"
        process.reset()

        let notify: NotifySocket
        do {
            notify = try NotifySocket()
            process.notifySource = try loop.onReadable(fd: notify.fd) { [weak self, unowned slot, unowned notify] _ in
                self?.notifyReadable(notify, slot: slot, index: index)
            }
        } catch {
            return spawnFailed(label, slot: slot, index: index, reason: "notify socket: \(error)")
        }
        process.notify = notify

        var request = SpawnRequest(argv: [], environment: [], listenPID: !cfg.sockets.isEmpty,
                                   workingDirectory: nil, stdin: environment.devNull, stdout: 2, stderr: 2,
                                   extraFDs: [], journalIdentifier: nil)
        request.argv = cfg.resolvedCommand
        request.extraFDs = cfg.sockets.compactMap { sockets[$0] }
        request.environment = environment.forChild(service: cfg, instance: index, notifySocket: notify.address)
        request.workingDirectory = environment.workingDirectory(for: cfg)
        request.nofileSoftLimit = environment.nofileSoftLimit
        if let cgroups {
            do {
                let cgroup = try cgroups.instance(service: cfg.name, index: index)
                process.cgroup = cgroup
                request.cgroupFD = cgroup.fd
            } catch {
                return spawnFailed(label, slot: slot, index: index, reason: "cgroup: \(error)")
            }
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
                return spawnFailed(label, slot: slot, index: index, reason: "\(error)")
            }
        }
        defer { if writeEnd >= 0 { close(writeEnd) } }

        let child: SpawnedProcess
        do {
            child = try spawner.spawn(request)
        } catch {
            return spawnFailed(label, slot: slot, index: index, reason: "\(error)")
        }
        process.pid = child.pid
        process.pgid = child.pid // setsid() in the child: its own session and process group
        do {
            process.child = try loop.watchChild(pidfd: child.pidfd) { [weak self, unowned slot] exit in
                self?.childExited(exit, slot: slot, index: index)
            }
        } catch {
            // Cannot watch it: do not leave it running unwatched.
            _ = kill(-child.pid, SIGKILL)
            close(child.pidfd)
            return spawnFailed(label, slot: slot, index: index, reason: "watching pid \(child.pid): \(error)")
        }
        log.write(LogEvent(.info, "spawned", "\(label) started (pid \(child.pid))",
                           service: cfg.name, instance: index, pid: child.pid))
        let pid = child.pid
        log.afterHold { [weak self] in self?.onProcessEvent?(slot, index, .started(pid: pid)) }
        return .spawned(pid: child.pid)
    }

    private func spawnFailed(_ label: String, slot: ServiceSlot, index: Int, reason: String) -> InstanceEvent {
        slot.processes[index]?.reset()
        log.write(LogEvent(.err, "spawn-failed", "\(label): \(reason)", service: slot.name, instance: index))
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
        process.pid = nil
        process.child = nil
        process.notifySource = nil
        process.notify = nil
        let expected = slot.machine.instances.indices.contains(index) && slot.machine.instances[index].state == .stopping
        var e = LogEvent(status.isSuccess || expected ? .info : .warning, "exited",
                         "\(slot.name).\(index) (pid \(exit.pid)) \(status)",
                         service: slot.name, instance: index, pid: exit.pid)
        e.exit = .init(code: status.code.rawValue, status: status.status)
        log.write(e)
        let pid = exit.pid
        log.afterHold { [weak self] in self?.onProcessEvent?(slot, index, .exited(pid: pid, status)) }
        handle(.processExited(status), instance: index, of: slot)
    }

    private func notifyReadable(_ notify: NotifySocket, slot: ServiceSlot, index: Int) {
        for message in notify.receive() where slot.processes[index]?.acceptsNotify(pid: message.pid, uid: message.uid) == true {
            for line in message.message.split(separator: "\n") {
                if line == "READY=1" {
                    handle(.readyNotified, instance: index, of: slot)
                } else if line.hasPrefix("STATUS=") {
                    slot.processes[index]?.status = String(line.dropFirst(7))
                    markChanged(slot)
                    onChange?()
                }
            }
        }
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

public enum ProcessEvent: Equatable, Sendable {
    case started(pid: Int32)
    case exited(pid: Int32, ExitStatus)
}
