import Glibc
import RingmasterCore
import Systemd

/// The imperative shell around the pure core: it feeds commands and process, timer and
/// notify events into the `Stack` and performs the actions it returns (spawn, signal, timers,
/// logs), owning each instance's resources. It decides nothing. Everything runs on the one
/// sd-event loop; nothing here blocks or polls.
public final class Supervisor {
    public let loop: EventLoop
    public let log: EventLog
    /// the whole policy: every service, its wants, its dependencies, the backlog
    public internal(set) var stack: Stack
    public var config: Config { stack.config }
    let spawner: Spawner
    let environment: ChildEnvironment
    /// the listening sockets by config name (owned by the Daemon's SocketSet)
    var sockets: [String: Int32] = [:]
    /// the delegated cgroup subtree (CgroupTree.takeOver()), or nil: process groups only
    public var cgroups: CgroupTree?
    /// the runtime side of every entry the core has, retiring ones included
    private(set) var slots: [ServiceID: ServiceSlot] = [:]
    private var onStopped: (() -> Void)?
    /// called after every change of state (STATUS=, D-Bus properties)
    public var onChange: (() -> Void)?
    /// a command given with a job id is done (SupervisorJobs.swift)
    public var onJobFinished: ((JobID, JobResult) -> Void)?
    /// a rolling restart's canary was rolled back: service, why, whether a reload's config was undone
    public var onRolledBack: ((_ service: String, _ reason: String, _ configRestored: Bool) -> Void)?
    var finishedWork: [() -> Void] = []
    var deliveringFinishedWork = false
    var nextJobID: UInt32 = 0
    /// called as a process of an instance starts (exec'd) and as it ends, in that order — exact,
    /// even for an instance that a scale-down drops in the same step (after the step, with the
    /// other announcements: see `holdAnnouncements`)
    public var onProcessEvent: ((_ slot: ServiceSlot, _ instance: Int, _ event: ProcessEvent) -> Void)?
    /// services that changed since the last `takeChangedSlots()` (the D-Bus layer diffs only these)
    private var changedSlots: [ServiceID: ServiceSlot] = [:]
    /// counts changes of the set of services (reloads, removals): the D-Bus objects follow it
    public internal(set) var generation = 0
    /// actions waiting to be performed, and the events their performing produced (spawn
    /// results), fed back to the core once the actions before them are done
    private var actionQueue: [StackAction] = []
    private var eventQueue: [(ServiceID, Int, InstanceEvent)] = []
    private var performing = false
    /// the next batch of the core's backlog, at idle priority: D-Bus calls, exits and the
    /// watchdog are served between batches
    private var continuation: EventSource?
    /// The daemon's one notify socket (`NOTIFY_SOCKET` of every instance) and its source;
    /// each message is attributed by its sender's pid (SCM_CREDENTIALS) through these indexes.
    var notifySocket: NotifySocket?
    var notifySource: EventSource?
    /// instances by the pid of their main process, and by their cgroup directory
    var instanceByPID: [Int32: (ServiceID, Int)] = [:]
    var instanceByCgroup: [String: (ServiceID, Int)] = [:]
    /// a change (`onChange`) is waiting for the end of the current hold
    private var changePending = false
    /// set by `perform` when it arms a restart timer that is already due
    var restartDue = false
    /// The hold an exit keeps until the restart it made due has spawned (see `childExited`),
    /// and the defer source that ends it in the next iteration should that restart not come.
    var restartHold: EventSource?
    /// memory.events watches of `memory-restart` instances (made at the first such spawn)
    var memoryWatch: MemoryWatch?

    public init(config: Config, loop: EventLoop, log: EventLog, spawner: Spawner = PosixSpawner(),
                environment: ChildEnvironment, limits: StackLimits = StackLimits()) {
        self.loop = loop
        self.log = log
        self.spawner = spawner
        self.environment = environment
        self.stack = Stack(config: config, limits: limits)
        for e in stack.entries { slots[e.id] = ServiceSlot(id: e.id, name: e.name, supervisor: self) }
    }

    public var now: USec { loop.now }

    // MARK: - lookups

    /// The services of the current config, in config order (not those a reload removed).
    public var services: [ServiceSlot] { stack.entries.compactMap { $0.retiring ? nil : slots[$0.id] } }
    var allSlots: [ServiceSlot] { stack.entries.compactMap { slots[$0.id] } }

    /// A service of the current config by name.
    public func slot(named name: String) -> ServiceSlot? { stack.entry(named: name).flatMap { slots[$0.id] } }


    /// Every wanted service is settled or failed, nothing is waiting (READY=1).
    public var isSettled: Bool { stack.isSettled }

    func markChanged(_ slot: ServiceSlot) { changedSlots[slot.id] = slot }

    /// The services whose state, processes or settings changed since the last call.
    public func takeChangedSlots() -> [ServiceSlot] {
        defer { changedSlots.removeAll(keepingCapacity: true) }
        return Array(changedSlots.values)
    }

    // MARK: - steps of the core

    /// Starts every autostart service, each once its dependencies are settled.
    public func start() { run(stack.boot(now: now)) }

    /// Stops everything in reverse dependency order, then calls `done`.
    public func shutdown(then done: @escaping () -> Void) {
        onStopped = done
        run(stack.shutdown(now: now))
    }

    /// A process, timer or notify event of an instance, into the core.
    func handle(_ event: InstanceEvent, instance: Int, of slot: ServiceSlot) {
        run(stack.handle(event, service: slot.id, instance: instance, now: now))
    }

    /// Performs a step's actions, then feeds back what performing them produced (a spawn's
    /// result) and performs the actions of that, until nothing is left. Re-entrant calls
    /// (an action whose effect calls back) queue behind the actions under way.
    func run(_ actions: [StackAction]) {
        noteRemovals(actions)
        actionQueue += actions
        guard !performing else { return }
        performing = true
        holdAnnouncements()
        defer {
            performing = false
            releaseAnnouncements()
        }
        var next = 0
        while true {
            while next < actionQueue.count {
                let action = actionQueue[next]
                next += 1
                perform(action)
            }
            actionQueue.removeAll(keepingCapacity: true)
            next = 0
            guard !eventQueue.isEmpty else { break }
            let (id, instance, event) = eventQueue.removeFirst()
            actionQueue = stack.handle(event, service: id, instance: instance, now: now)
            noteRemovals(actionQueue)
        }
        changed()
        deliverFinishedWork()
    }

    /// The core has dropped removed entries already: their slots keep the last entry for the
    /// actions performed before the removal itself.
    private func noteRemovals(_ actions: [StackAction]) {
        for case let .serviceRemoved(entry) in actions { slots[entry.id]?.removedEntry = entry }
    }

    private func perform(_ action: StackAction) {
        switch action {
        case let .instance(id, index, instanceAction):
            guard let slot = slots[id] else { return }
            markChanged(slot)
            perform(instanceAction, instance: index, of: slot)
        case let .serviceStateChanged(id, from, to):
            guard let slot = slots[id] else { return }
            markChanged(slot)
            slot.stateChangedRealtime = realtimeNow()
            var message = "\(slot.name): \(from.rawValue) -> \(to.rawValue)"
            if to == .failed, let why = stack.entry(id)?.machine.failureReason { message += " (\(why))" }
            log.write(LogEvent(to == .failed ? .err : .info, "state", message, service: slot.name))
        case let .serviceAdded(id):
            guard let e = stack.entry(id) else { return }
            let slot = ServiceSlot(id: id, name: e.name, supervisor: self)
            slots[id] = slot
            markChanged(slot)
            generation += 1
        case let .serviceRemoved(entry):
            guard let slot = slots.removeValue(forKey: entry.id) else { return }
            markChanged(slot)
            slot.onRemoved?()
            cgroups?.removeService(slot.name)
            generation += 1
        case let .note(id, note):
            let priority: Priority = note.level == .info ? .info : note.level == .warning ? .warning : .err
            log.write(LogEvent(priority, note.event, note.message, service: id.flatMap { slots[$0]?.name }))
        case .continueLater:
            scheduleContinuation()
        case .shutdownComplete:
            let done = onStopped
            onStopped = nil
            done?()
        case let .rolledBack(id, reason, restored):
            guard let slot = slots[id] else { return }
            markChanged(slot)
            finishedWork.append { [weak self] in self?.onRolledBack?(slot.name, reason, restored) }
        case let .jobFinished(job, result):
            finishedWork.append { [weak self] in self?.onJobFinished?(job, result) }
        }
    }

    /// The time one loop iteration may spend on batches of the backlog (µs).
    static let batchTimeBudget: UInt64 = 5_000
    static let batchesPerIteration = 4
    /// Whether the control plane is behind (the D-Bus layer sets it): batches wait meanwhile.
    public var isCongested: (() -> Bool)?

    private func scheduleContinuation() {
        guard continuation == nil else { return }
        do {
            let source = try loop.onDefer { [weak self] in
                guard let self else { return }
                self.continuation = nil
                // Backpressure from the transport: while the bus is congested (dbus-daemon
                // behind on what we sent), more work would queue more signals ahead of every
                // reply: wait a little, then look again. (Stops in flight are the core's to
                // count: `StackLimits.maximumStopping`.)
                if self.isCongested?() == true {
                    self.continuation = try? self.loop.timer(at: self.loop.now &+ 2_000, accuracy: 1_000) { [weak self] in
                        self?.continuation = nil
                        self?.scheduleContinuation()
                    }
                    return
                }
                // Batches (the core's count budget) until this iteration's budget is spent:
                // 5 ms, and at most 4 batches; exits and D-Bus calls are served between.
                let deadline = monotonicNow() &+ Supervisor.batchTimeBudget
                var batches = 0
                repeat {
                    self.run(self.stack.continueWork(now: self.now))
                    batches += 1
                } while self.stack.hasBacklog && batches < Supervisor.batchesPerIteration && monotonicNow() < deadline
            }
            try source.setPriority(100) // SD_EVENT_PRIORITY_IDLE: after everything else that is ready
            continuation = source
        } catch {
            log.error("batch", "cannot schedule the next batch of work: \(error)")
        }
    }

    private func perform(_ action: InstanceAction, instance index: Int, of slot: ServiceSlot) {
        let process = slot.process(index)
        switch action {
        case .spawn:
            eventQueue.append((slot.id, index, spawn(slot: slot, index: index, process: process)))
        case .preStart:
            eventQueue.append((slot.id, index, startPreStart(slot: slot, index: index, process: process)))
        case let .signal(signo):
            if let pgid = process.pgid { _ = kill(-pgid, signo) }
        case .killAll:
            // (sd-event reaps a child only after our exit handler returns, so the group still
            // exists here at least as the zombie leader: no pid reuse race.)
            if let pgid = process.pgid { _ = kill(-pgid, SIGKILL) }
            process.cgroup?.kill()   // the whole cgroup: setsid() grandchildren too
            if process.pid == nil {
                process.pgid = nil
                if let cgroup = process.cgroup {
                    cgroups?.removeWhenEmpty(cgroup, loop: loop)
                    if instanceByCgroup[cgroup.path].map({ $0 == (slot.id, index) }) == true { instanceByCgroup[cgroup.path] = nil }
                }
                process.cgroup = nil
            }
        case let .armTimer(.watchdog, deadline) where process.timers[.watchdog]?.isActive == true:
            // WATCHDOG=1 re-arms the timer it has: no new source per ping.
            do { try process.timers[.watchdog]?.reschedule(at: deadline) } catch {
                log.error("timer", "\(slot.name).\(index): cannot re-arm the watchdog timer: \(error)", service: slot.name)
            }
        case let .armTimer(timer, deadline):
            do {
                // A restart fires on time: sd-event lets a timer fire as late as its accuracy
                // allows (to coalesce wake-ups), and with the default 1 ms a zero
                // restart-delay waited up to 1 ms in the loop for nothing.
                let accuracy: UInt64 = timer == .restart ? 1 : 1_000
                let id = slot.id
                let source = try loop.timer(at: deadline, accuracy: accuracy) { [weak self, unowned slot] in
                    guard let self else { return }
                    slot.processes[index]?.timers[timer] = nil
                    self.run(self.stack.handle(.timerFired(timer), service: id, instance: index, now: self.now))
                    if timer == .restart { self.endRestartHold() }
                }
                if timer == .restart && deadline <= now { restartDue = true }
                process.timers[timer] = source
            } catch {
                log.error("timer", "\(slot.name).\(index): cannot arm \(timer) timer: \(error)", service: slot.name)
            }
        case let .cancelTimer(timer):
            process.timers[timer] = nil
        case let .stateChanged(from, to):
            log.write(LogEvent(.debug, "instance-state", "\(slot.name).\(index): \(from.rawValue) -> \(to.rawValue)",
                               service: slot.name, instance: index, pid: process.pid))
            if !to.isTransient && to != .running && process.pid == nil {
                // At rest: nothing of the instance's but its cgroup (until empty) is kept.
                process.reset()
                slot.dropProcess(index, ifAtOrBeyond: slot.entry.machine.instances.count)
            }
            probesInstanceChanged(slot, index, to)
        case let .gaveUp(reason):
            log.write(LogEvent(.err, "gave-up", "\(slot.name).\(index) gave up: \(reason)",
                               service: slot.name, instance: index))
        case .sampleMemory:
            if let sample = sampleMemory(process) { eventQueue.append((slot.id, index, sample)) }
        }
    }

    // MARK: - announcements after the spawn

    /// While held, the daemon's journal entries, the D-Bus signals and, once at the end, the
    /// change (`onChange`: STATUS=, PropertiesChanged) wait, so that a spawn does not wait
    /// behind the sendmsg()s that wake journald, systemd and dbus-daemon (each may take the
    /// CPU from the daemon). Every step holds while it works (`run`), and a restart from the
    /// exit of the old process until the new one has spawned (`childExited`): what is
    /// announced, and its order, stay the same.
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
    func endRestartHold() {
        guard restartHold != nil else { return }
        restartHold = nil
        releaseAnnouncements()
    }
}

public enum ProcessEvent: Equatable, Sendable {
    case started(pid: Int32)
    case exited(pid: Int32, ExitStatus)
}
