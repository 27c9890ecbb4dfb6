// The supervision of one instance (one process slot) of a service, as a pure state machine.
//
// Like s6-supervise, "what is wanted" (`wanted`) is kept apart from "what is" (`state`, `pid`):
// commands (start/stop/restart) only change what is wanted and ask for the first step;
// only process and timer events move the state. Every transition goes through `enter(_:)`,
// which reports `old -> new` as an action so the runtime logs it in one place.
// No I/O and no clock: `now` is passed in with every event.

public enum InstanceState: String, Equatable, Sendable, CaseIterable {
    /// `exited`: ended and will not be restarted by policy (a clean exit under
    /// `restart = "on-failure"` or `"never"`); a start command runs it again.
    case stopped, starting, running, stopping, backoff, failed, exited

    /// A process is (or is about to be) there, or a timer will act: not a resting state.
    public var isTransient: Bool { self == .starting || self == .stopping || self == .backoff }
}

/// How a process ended, as waitid(2) reports it.
public struct ExitStatus: Equatable, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Equatable, Hashable, Sendable {
        case exited, killed, dumped
    }
    public var code: Code
    /// exit status for `.exited`, signal number otherwise
    public var status: Int32
    public init(code: Code, status: Int32) { self.code = code; self.status = status }
    public static func exited(_ status: Int32) -> ExitStatus { ExitStatus(code: .exited, status: status) }
    public static func killed(_ signal: Int32) -> ExitStatus { ExitStatus(code: .killed, status: signal) }

    public var isSuccess: Bool { code == .exited && status == 0 }

    public var description: String {
        switch code {
        case .exited: return "exited with status \(status)"
        case .killed: return "killed by \(Signals.description(of: status))"
        case .dumped: return "dumped core on \(Signals.description(of: status))"
        }
    }
}

public enum InstanceEvent: Equatable, Sendable {
    /// want it up (a command, autostart, or dependencies became ready)
    case startRequested
    /// want it down
    case stopRequested
    /// want it up, with a fresh process
    case restartRequested
    /// the spawn action succeeded: the process has exec'd
    case spawned(pid: Int32)
    /// the spawn action failed before or at exec ("exec python4: No such file or directory")
    case spawnFailed(reason: String)
    /// READY=1 arrived on the instance's notify socket (ignored with `ready = "probe"`: the
    /// readiness probe decides)
    case readyNotified
    /// the readiness probe passed `successes` times in a row (`ready = "probe"`; ProbePolicy.swift)
    case readinessProbePassed
    /// the main process ended
    case processExited(ExitStatus)
    case timerFired(InstanceTimer)
    /// The process must go for this reason (a missed watchdog, a failed liveness probe,
    /// `ready-timeout`): it is sent `signal` (nil: its `stop-signal`), SIGKILL after
    /// `stop-timeout`, and its end counts as a failure with this reason — restarted by
    /// policy, with backoff and the start limit. Ignored without a live process.
    case abort(ExitReason, signal: Int32? = nil)
    /// A probe of the current process ran: recorded for the per-instance view (what a
    /// result leads to — ready, a restart — is decided by the probe policy above this machine).
    case probed(InstanceHealth)
    /// Why the current process is ending, learnt before its exit is handled (an OOM kill
    /// read from the cgroup's memory.events): its exit reports this reason.
    case causeNoted(ExitReason)
    /// the `preStart` action's process runs (InstanceMachine+PreStart.swift)
    case preStartSpawned(pid: Int32)
    /// the `preStart` action could not start its process
    case preStartFailed(reason: String)
    /// the pre-start process ended: 0 lets the spawn go ahead
    case preStartExited(ExitStatus)
    /// A process of the instance sent WATCHDOG=1, WATCHDOG=trigger or WATCHDOG_USEC= on the
    /// notify socket (as systemd handles them: InstanceWatchdog.swift).
    case watchdog(WatchdogMessage)
    /// The instance's memory (its cgroup's memory.current), read after the cgroup told of a
    /// memory.high breach (memory.events) or for a `sampleMemory` action.
    case memorySampled(bytes: UInt64)
    /// Replace the process for this reason: stop signal, then a new process at once (an
    /// automatic restart, no backoff); its end reports the reason. From the Stack's memory
    /// restarts, one instance of a service at a time.
    case gracefulRestart(ExitReason)
}

public enum InstanceTimer: Equatable, Hashable, Sendable {
    /// backoff is over: spawn again
    case restart
    /// the stop signal was not enough: escalate to SIGKILL
    case stopTimeout
    /// no WATCHDOG=1 within the period: abort the process (reason `watchdog`)
    case watchdog
    /// memory was above `memory-restart` this long ago: measure it again
    case memoryCheck
    /// `ready-timeout` passed since the spawn and the instance is not ready: a failed start
    case readyTimeout
}

public enum InstanceAction: Equatable, Sendable {
    case spawn
    /// run the service's `pre-start` for this instance (its environment, directory and
    /// cgroup; its own process group, signalled and killed as the instance's), report
    /// `preStartSpawned`/`preStartFailed`, then `preStartExited`
    case preStart
    /// send to the instance's whole process group (or cgroup)
    case signal(Int32)
    /// SIGKILL everything the instance has left: the process group (or cgroup)
    case killAll
    case armTimer(InstanceTimer, deadline: USec)
    case cancelTimer(InstanceTimer)
    case stateChanged(from: InstanceState, to: InstanceState)
    /// the instance will not be restarted again: the start limit was hit, or restart policy says no
    case gaveUp(reason: String)
    /// read the instance's memory (memory.current) and feed it back as `memorySampled`
    case sampleMemory
}

public struct InstanceMachine: Equatable, Sendable {
    public let index: Int
    public private(set) var state: InstanceState = .stopped
    /// what commands asked for: up or down
    public private(set) var wanted = false
    public private(set) var pid: Int32? = nil
    public private(set) var startedAt: USec? = nil
    /// consecutive failures since the last stable run: drives the backoff delay
    public private(set) var consecutiveFailures = 0
    /// spawn times inside the start-limit window
    public private(set) var recentStarts: [USec] = []
    /// automatic restarts so far (not counting commands)
    public private(set) var restarts = 0
    public internal(set) var lastExit: ExitStatus? = nil
    /// why the last process ended (nil before any end): SPEC "Exit reasons"
    public internal(set) var lastExitReason: ExitReason? = nil
    /// Set when the machine (or the runtime, for an OOM kill) knows why the current process
    /// is ending before it has ended: the exit then reports this instead of its bare status.
    public private(set) var endingCause: ExitReason? = nil
    /// the last probe result of the current process (nil: no probe ran for it)
    public private(set) var health: InstanceHealth? = nil
    /// the current process is being stopped by `abort`: its end is a failure, not a stop
    public private(set) var aborting = false
    /// why the instance is failed, when it is
    public private(set) var failureReason: String? = nil
    /// when `state` last changed
    public private(set) var stateChangedAt: USec = 0
    /// spawns so far: a rolling restart knows an instance was replaced when this grew
    public private(set) var generation = 0
    /// while `backoff`: when its restart timer fires (for the per-instance view)
    public private(set) var restartAt: USec? = nil
    /// the `pre-start` of the coming spawn was asked for and has not ended
    public internal(set) var inPreStart = false
    /// the pre-start's process, while it runs
    public internal(set) var preStartPid: Int32? = nil
    /// the watchdog timer is armed for the current process
    public internal(set) var watchdogArmed = false
    /// WATCHDOG_USEC= sent by the current process: its period from then on (0: off)
    public internal(set) var watchdogOverride: USec? = nil
    /// since when the current process's memory has been seen above `memory-restart`
    public internal(set) var memoryAboveSince: USec? = nil
    /// the `.memoryCheck` timer is armed
    public internal(set) var memoryCheckArmed = false
    /// its memory stayed above `memory-restart`: the Stack restarts it when its turn comes
    public internal(set) var memoryRestartDue = false
    /// the current process is being replaced (`gracefulRestart`): its successor is an automatic restart
    public internal(set) var replacing = false

    /// the `ready-timeout` timer of the current process is armed
    public private(set) var readyTimerArmed = false

    public init(index: Int) { self.index = index }

    /// Arms the `ready-timeout` of the process just spawned (nothing if it is 0): while it is
    /// `starting` when the timer fires, it is aborted with reason `ready-timeout`. Leaving
    /// `starting` cancels it.
    mutating func armReadyTimer(config: ServiceConfig, now: USec, into actions: inout [InstanceAction]) {
        guard config.readyTimeout > 0, state == .starting else { return }
        readyTimerArmed = true
        actions.append(.armTimer(.readyTimeout, deadline: now &+ config.readyTimeout))
    }

    public var isActive: Bool { pid != nil }

    /// The reason the current process's end has if it ended with `status` now: a cause noted
    /// before (an abort, an OOM kill) wins over the bare status. `lastExitReason` after its exit.
    public func exitReason(for status: ExitStatus) -> ExitReason { endingCause ?? ExitReason(status: status) }

    public mutating func handle(_ event: InstanceEvent, config: ServiceConfig, now: USec) -> [InstanceAction] {
        var actions: [InstanceAction] = []
        switch event {
        case .startRequested:
            wanted = true
            switch state {
            case .stopped, .failed, .exited:
                resetFailures()
                spawn(config: config, now: now, manual: true, into: &actions)
            case .backoff:
                actions.append(.cancelTimer(.restart))
                spawn(config: config, now: now, manual: true, into: &actions)
            case .starting, .running, .stopping:
                break // already up, or comes back up once the old process is gone
            }

        case .restartRequested:
            wanted = true
            aborting = false // a restart asked for now: no backoff after the aborted process
            replacing = false
            switch state {
            case .starting, .running:
                beginStop(config: config, now: now, into: &actions)
            case .stopped, .failed, .backoff, .exited:
                if state == .backoff { actions.append(.cancelTimer(.restart)) }
                resetFailures()
                spawn(config: config, now: now, manual: true, into: &actions)
            case .stopping:
                break
            }

        case .stopRequested:
            wanted = false
            switch state {
            case .starting, .running:
                beginStop(config: config, now: now, into: &actions)
            case .backoff:
                actions.append(.cancelTimer(.restart))
                enter(.stopped, now: now, into: &actions)
            case .failed, .exited:
                failureReason = nil
                enter(.stopped, now: now, into: &actions)
            case .stopped, .stopping:
                break
            }

        case let .spawned(pid):
            guard self.pid == nil else { break }
            if state == .starting {
                self.pid = pid
                startedAt = now
                // A oneshot is never "ready": it is done when it exits 0, and `ready-timeout`
                // limits its run (SPEC: "a oneshot not finished" is a failed start).
                if config.type == .oneshot {
                    armReadyTimer(config: config, now: now, into: &actions)
                } else if config.ready == .started {
                    enter(.running, now: now, into: &actions)
                    armWatchdog(config: config, now: now, into: &actions)
                } else {
                    armReadyTimer(config: config, now: now, into: &actions)
                }
            } else if state == .stopping {
                // Told to stop while its spawn was under way: it gets its stop signal now.
                self.pid = pid
                startedAt = now
                actions.append(.signal(config.stopSignal))
            }

        case let .spawnFailed(reason):
            guard pid == nil else { break }
            if state == .starting {
                lastExit = .exited(127)
                lastExitReason = .spawn
                handleFailure(reason: reason, ranFor: 0, config: config, now: now, into: &actions)
            } else if state == .stopping {
                // Told to stop while its spawn was under way, and there is no process: stopped.
                lastExit = .exited(127)
                lastExitReason = .spawn
                actions.append(.cancelTimer(.stopTimeout))
                if wanted {
                    spawn(config: config, now: now, manual: true, into: &actions)
                } else {
                    enter(.stopped, now: now, into: &actions)
                }
            }

        case .readyNotified, .readinessProbePassed:
            // Each ready mode has one source of readiness: READY=1, or the readiness probe.
            let fromProbe = event == .readinessProbePassed
            if state == .starting, pid != nil, config.type != .oneshot, fromProbe == (config.ready == .probe) {
                enter(.running, now: now, into: &actions)
                armWatchdog(config: config, now: now, into: &actions)
            }

        case let .processExited(status):
            guard pid != nil else { break }
            pid = nil
            lastExit = status
            lastExitReason = exitReason(for: status)
            endingCause = nil
            let ranFor = startedAt.map { now >= $0 ? now - $0 : 0 } ?? 0
            startedAt = nil
            disarmWatchdog(into: &actions)
            clearMemoryWatch(into: &actions)
            let replaced = replacing
            replacing = false
            // Whatever the main process left in its group goes with it (as systemd's KillMode=control-group).
            actions.append(.killAll)
            if state == .stopping && aborting {
                aborting = false
                actions.append(.cancelTimer(.stopTimeout))
                let reason = lastExitReason.map { "\($0.rawValue): \(status)" } ?? status.description
                handleFailure(reason: reason, ranFor: ranFor, config: config, now: now, into: &actions)
            } else if state == .stopping {
                actions.append(.cancelTimer(.stopTimeout))
                if wanted {
                    spawn(config: config, now: now, manual: !replaced, into: &actions)
                } else {
                    enter(.stopped, now: now, into: &actions)
                }
            } else {
                handleFailure(reason: status.description, ranFor: ranFor, success: status.isSuccess,
                              config: config, now: now, into: &actions)
            }

        case .timerFired(.restart):
            if state == .backoff, wanted { spawn(config: config, now: now, manual: false, into: &actions) }

        case .timerFired(.stopTimeout):
            if state == .stopping, pid != nil || preStartPid != nil { actions.append(.killAll) }

        case .timerFired(.watchdog):
            guard watchdogArmed else { break }
            watchdogArmed = false
            beginAbort(.watchdog, signal: Signals.watchdogSignal, config: config, now: now, into: &actions)

        case .timerFired(.readyTimeout):
            guard readyTimerArmed else { break }
            readyTimerArmed = false
            beginAbort(.readyTimeout, signal: nil, config: config, now: now, into: &actions)

        case let .abort(reason, signal):
            beginAbort(reason, signal: signal, config: config, now: now, into: &actions)

        case let .watchdog(message):
            handleWatchdog(message, config: config, now: now, into: &actions)

        case let .memorySampled(bytes):
            handleMemorySample(bytes, config: config, now: now, into: &actions)

        case .timerFired(.memoryCheck):
            memoryCheckArmed = false
            if pid != nil, state == .running, memoryAboveSince != nil, !memoryRestartDue { actions.append(.sampleMemory) }

        case let .gracefulRestart(reason):
            guard pid != nil, state == .running || state == .starting, wanted else { break }
            endingCause = reason
            replacing = true
            beginStop(config: config, now: now, into: &actions)

        case let .causeNoted(reason):
            if pid != nil { endingCause = reason }

        case let .probed(result):
            if pid != nil { health = result }

        case .preStartSpawned, .preStartFailed, .preStartExited:
            handlePreStart(event, config: config, now: now, into: &actions)
        }
        return actions
    }

    // MARK: - steps

    /// Ends the current process for `reason`: `signal` (nil: the stop signal), SIGKILL after
    /// `stop-timeout`; its end is a failure with that reason. Nothing without a live process.
    mutating func beginAbort(_ reason: ExitReason, signal: Int32?, config: ServiceConfig, now: USec,
                             into actions: inout [InstanceAction]) {
        guard pid != nil, state == .starting || state == .running else { return }
        disarmWatchdog(into: &actions)
        clearMemoryWatch(into: &actions)
        endingCause = reason
        aborting = true
        enter(.stopping, now: now, into: &actions)
        actions.append(.signal(signal ?? config.stopSignal))
        // A process that no longer answers its liveness probe may be stopped (SIGSTOP): continue
        // it so that it can act on its stop signal, as systemd does after a kill signal.
        if reason == .liveness { actions.append(.signal(Signals.continueSignal)) }
        actions.append(.armTimer(.stopTimeout, deadline: now &+ config.stopTimeout))
    }

    mutating func enter(_ new: InstanceState, now: USec, into actions: inout [InstanceAction]) {
        guard new != state else { return }
        if readyTimerArmed && new != .starting {
            // Ready, stopping or ended: the ready-timeout no longer applies.
            readyTimerArmed = false
            actions.append(.cancelTimer(.readyTimeout))
        }
        if new != .backoff { restartAt = nil }
        actions.append(.stateChanged(from: state, to: new))
        state = new
        stateChangedAt = now
    }

    private mutating func resetFailures() {
        consecutiveFailures = 0
        recentStarts = []
        failureReason = nil
    }

    mutating func spawn(config: ServiceConfig, now: USec, manual: Bool, into actions: inout [InstanceAction]) {
        endingCause = nil
        watchdogOverride = nil
        memoryAboveSince = nil
        memoryRestartDue = false
        replacing = false
        aborting = false
        health = nil
        if !manual { restarts += 1 }
        generation += 1
        recentStarts.append(now)
        enter(.starting, now: now, into: &actions)
        if config.preStart.isEmpty {
            actions.append(.spawn)
        } else {
            inPreStart = true
            actions.append(.preStart)
        }
    }

    private mutating func beginStop(config: ServiceConfig, now: USec, into actions: inout [InstanceAction]) {
        disarmWatchdog(into: &actions)
        clearMemoryWatch(into: &actions)
        enter(.stopping, now: now, into: &actions)
        actions.append(.signal(config.stopSignal))
        actions.append(.armTimer(.stopTimeout, deadline: now &+ config.stopTimeout))
    }

    /// The process ended (or never exec'd) without being asked to: restart, back off, or give up.
    mutating func handleFailure(reason: String, ranFor: USec, success: Bool = false,
                                        config: ServiceConfig, now: USec, into actions: inout [InstanceAction]) {
        let restart: Bool
        switch config.restart {
        case .always: restart = wanted
        case .onFailure: restart = wanted && !success
        case .never: restart = false
        }
        guard restart else {
            if !wanted {
                enter(.stopped, now: now, into: &actions)
            } else if success {
                enter(.exited, now: now, into: &actions)
            } else {
                fail("\(reason); restart = \"\(config.restart.rawValue)\"", now: now, into: &actions)
            }
            return
        }
        // A run that lasted `stable-after` was a success as far as backoff is concerned.
        if ranFor >= config.stableAfter { consecutiveFailures = 0 }
        consecutiveFailures += 1

        // Start limit: at most `count` starts within `interval`.
        let windowStart = now >= config.startLimit.interval ? now - config.startLimit.interval : 0
        recentStarts.removeAll { $0 < windowStart }
        if recentStarts.count >= config.startLimit.count {
            fail("start limit hit: \(recentStarts.count) starts within \(formatDuration(config.startLimit.interval)); last: \(reason)",
                 now: now, into: &actions)
            return
        }
        // Even a zero delay goes through a timer, so a crash loop never recurses or starves the loop.
        enter(.backoff, now: now, into: &actions)
        restartAt = now &+ backoffDelay(config: config)
        actions.append(.armTimer(.restart, deadline: now &+ backoffDelay(config: config)))
    }

    private mutating func fail(_ reason: String, now: USec, into actions: inout [InstanceAction]) {
        failureReason = reason
        enter(.failed, now: now, into: &actions)
        actions.append(.gaveUp(reason: reason))
    }

    /// restart-delay doubled per consecutive failure, capped at restart-delay-max.
    public func backoffDelay(config: ServiceConfig) -> USec {
        var delay = config.restartDelay
        var n = 1
        while n < consecutiveFailures, delay < config.restartDelayMax {
            delay = delay > USec.max / 2 ? USec.max : delay * 2
            n += 1
        }
        return min(delay, max(config.restartDelayMax, config.restartDelay))
    }
}

/// "10s", "1500ms", "2min": for messages.
public func formatDuration(_ usec: USec) -> String {
    if usec == 0 { return "0" }
    if usec % (3600 * USec.perSecond) == 0 { return "\(usec / (3600 * USec.perSecond))h" }
    if usec % (60 * USec.perSecond) == 0 { return "\(usec / (60 * USec.perSecond))min" }
    if usec % USec.perSecond == 0 { return "\(usec / USec.perSecond)s" }
    if usec % USec.perMillisecond == 0 { return "\(usec / USec.perMillisecond)ms" }
    return "\(usec)us"
}

