// The probe policy of one service, as a pure value: when each instance's probes run, what
// their results lead to, and the rule that keeps a failing liveness from restarting a whole
// service at once. The runtime (RingmasterRuntime/Probes.swift) performs what it returns:
// timers, probes, and instance events it feeds to the Stack.
//
// - Readiness (`ready = "probe"`) runs from the instance's spawn (after `initial-delay`) every
//   `interval` until `successes` passes in a row: then the instance is ready (the event
//   `readinessProbePassed`, what READY=1 does in the other modes, so `after` waits for it) and readiness stops.
//   Failures only show as the instance's health; `ready-timeout` bounds the wait.
// - Liveness runs from the moment the instance is ready (`running`) — a slow start is never
//   killed by it — every `interval`. `failures` failures in a row (a timeout is a failure;
//   `successes` passes in a row clear the count) end that instance: `abort(.liveness)`, so it
//   is stopped and restarted by its restart policy, with backoff and the start limit.
// - One at a time: while an instance replaced for its liveness has not yet passed a liveness
//   probe with its new process, no other instance of the service is restarted for liveness.
//   The others keep being probed and keep their processes (each is noted once as waiting);
//   when the replacement passes, the next one still failing goes at its next failed probe.
//   So when every instance fails at once — their database went away — one instance is tried
//   again and again (each time `interval` × `failures` apart, with backoff), and the rest
//   keep serving what they can until the cause is gone, instead of all restarting in a loop.
// - Every result is recorded as the instance's health (`probed`), fed only when it changes.

public struct ProbeKey: Hashable, Sendable {
    public var instance: Int
    public var kind: ProbeKind
    public init(_ instance: Int, _ kind: ProbeKind) { self.instance = instance; self.kind = kind }
}

/// One probe of one instance.
public struct ProbeState: Equatable, Sendable {
    public enum Phase: Equatable, Sendable {
        /// not probing (the instance is not in a state this probe runs in, or readiness is done)
        case idle
        /// the next probe starts at `due`
        case waiting(due: USec)
        /// a probe due at `due` is in flight (the next is due an `interval` after that, so timers
        /// that fire a little late for coalescing keep the cadence); it fails at `deadline`
        case running(due: USec, deadline: USec)
    }
    public internal(set) var phase: Phase = .idle
    public internal(set) var failuresInRow = 0
    public internal(set) var successesInRow = 0
}

public enum ProbeOutput: Equatable, Sendable {
    /// (re)arm the probe's one timer for `at` (a probe's timeout is armed before it runs: a
    /// result that comes at once re-arms it for the next probe)
    case arm(ProbeKey, at: USec)
    /// start the probe now (its timeout is the `arm` just before)
    case run(ProbeKey)
    /// cancel the probe's timer and whatever of it is in flight (close its socket, kill its process)
    case stop(ProbeKey)
    /// feed the instance's machine, through the Stack: `readinessProbePassed`, `abort(.liveness)`, `probed`
    case event(instance: Int, InstanceEvent)
    /// a line for the daemon's log, about that instance (the message has no subject: the
    /// runtime writes "web.2 " before it)
    case note(instance: Int, StackNote)
}

public struct ProbeBoard: Equatable, Sendable {
    public let liveness: ProbeConfig?
    public let readiness: ProbeConfig?
    public private(set) var probes: [ProbeKey: ProbeState] = [:]
    /// the instance restarted for its liveness whose new process has not passed a liveness probe yet
    public private(set) var replacing: Int? = nil
    /// instances whose liveness failed enough, waiting for `replacing` (noted once)
    public private(set) var held: Set<Int> = []
    /// the health last fed to each instance's machine
    public private(set) var health: [Int: InstanceHealth] = [:]

    /// The board of a service, nil when it has no probe (it then costs nothing).
    public init?(config: ServiceConfig) {
        guard config.hasProbes else { return nil }
        liveness = config.liveness
        readiness = config.ready == .probe ? config.readiness : nil
    }

    public func probe(_ kind: ProbeKind) -> ProbeConfig? { kind == .liveness ? liveness : readiness }

    public func state(_ instance: Int, _ kind: ProbeKind) -> ProbeState? { probes[ProbeKey(instance, kind)] }

    // MARK: - events

    /// Instance `instance` entered `state`: probes begin or end.
    public mutating func instanceChanged(_ instance: Int, to state: InstanceState, now: USec) -> [ProbeOutput] {
        var out: [ProbeOutput] = []
        switch state {
        case .starting:
            health[instance] = nil // a new process: the machine forgot the old one's health too
            halt(ProbeKey(instance, .liveness), into: &out)
            begin(ProbeKey(instance, .readiness), now: now, into: &out)
        case .running:
            halt(ProbeKey(instance, .readiness), into: &out)
            begin(ProbeKey(instance, .liveness), now: now, into: &out)
        case .stopping, .backoff:
            halt(ProbeKey(instance, .readiness), into: &out)
            halt(ProbeKey(instance, .liveness), into: &out)
        case .stopped, .failed, .exited:
            halt(ProbeKey(instance, .readiness), into: &out)
            halt(ProbeKey(instance, .liveness), into: &out)
            probes[ProbeKey(instance, .readiness)] = nil
            probes[ProbeKey(instance, .liveness)] = nil
            health[instance] = nil
            held.remove(instance)
            if replacing == instance { replacing = nil }
        }
        return out
    }

    /// The probe's timer fired: a due probe starts, a running one has timed out.
    public mutating func timerFired(_ key: ProbeKey, now: USec) -> [ProbeOutput] {
        var out: [ProbeOutput] = []
        guard let probe = probe(key.kind), let s = probes[key] else { return out }
        switch s.phase {
        case .idle:
            break
        case let .waiting(due):
            guard now >= due else { out.append(.arm(key, at: due)); break }
            let deadline = now &+ probe.timeout
            probes[key]?.phase = .running(due: due, deadline: deadline)
            out.append(.arm(key, at: deadline))
            out.append(.run(key))
        case let .running(_, deadline):
            guard now >= deadline else { out.append(.arm(key, at: deadline)); break }
            out.append(.stop(key))
            out += finished(key, passed: false, detail: "timed out after \(formatDuration(probe.timeout))", now: now)
        }
        return out
    }

    /// A probe in flight ended: passed or not (`detail` says why not, for the log).
    public mutating func finished(_ key: ProbeKey, passed: Bool, detail: String, now: USec) -> [ProbeOutput] {
        var out: [ProbeOutput] = []
        guard let probe = probe(key.kind), var s = probes[key], case let .running(due, _) = s.phase else { return out }
        if passed {
            s.successesInRow += 1
            if s.successesInRow >= probe.successes { s.failuresInRow = 0 }
        } else {
            s.failuresInRow += 1
            s.successesInRow = 0
        }
        let next = max(due &+ probe.interval, now)
        s.phase = .waiting(due: next)
        probes[key] = s
        report(key.instance, passed ? .passing : .failing, into: &out)

        switch key.kind {
        case .readiness:
            if passed && s.successesInRow >= probe.successes {
                probes[key]?.phase = .idle
                out.append(.event(instance: key.instance, .readinessProbePassed))
                return out
            }
        case .liveness:
            if passed {
                if replacing == key.instance {
                    replacing = nil
                    out.append(.note(instance: key.instance, StackNote(.info, "liveness",
                        "passes its liveness probe again")))
                }
            } else if s.failuresInRow >= probe.failures {
                if replacing == nil || replacing == key.instance {
                    replacing = key.instance
                    held.remove(key.instance)
                    probes[key]?.phase = .idle
                    out.append(.note(instance: key.instance, StackNote(.warning, "liveness",
                        "failed its liveness probe \(s.failuresInRow) times in a row (\(detail)): restarting it")))
                    out.append(.event(instance: key.instance, .abort(.liveness, signal: nil)))
                    return out
                }
                if held.insert(key.instance).inserted, let other = replacing {
                    out.append(.note(instance: key.instance, StackNote(.warning, "liveness",
                        "failed its liveness probe \(s.failuresInRow) times in a row (\(detail)); not restarted while instance \(other), restarted for its liveness, "
                        + "has not passed it again (one at a time)")))
                }
            }
        }
        out.append(.arm(key, at: next))
        return out
    }

    // MARK: - steps

    private mutating func begin(_ key: ProbeKey, now: USec, into out: inout [ProbeOutput]) {
        guard let probe = probe(key.kind) else { return }
        let due = now &+ probe.initialDelay
        probes[key] = ProbeState(phase: .waiting(due: due))
        out.append(.arm(key, at: due))
    }

    private mutating func halt(_ key: ProbeKey, into out: inout [ProbeOutput]) {
        guard let s = probes[key], s.phase != .idle else { return }
        probes[key]?.phase = .idle
        out.append(.stop(key))
    }

    private mutating func report(_ instance: Int, _ result: InstanceHealth, into out: inout [ProbeOutput]) {
        guard health[instance] != result else { return }
        health[instance] = result
        out.append(.event(instance: instance, .probed(result)))
    }
}
