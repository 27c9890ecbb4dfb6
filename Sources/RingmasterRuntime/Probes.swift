import Glibc
import RingmasterCore
import Systemd

/// The runtime side of one service's probes: the core's `ProbeBoard` (which decides), each
/// probe's timer deadline, one sd-event timer for them all (the earliest deadline: when it
/// fires, every probe then due is handled in that one dispatch), and the probes in flight.
/// Exists only for a service with a probe: a service without costs no timer, no wake-up,
/// nothing; a service whose instances are all at rest keeps no timer either.
final class ServiceProbes {
    var board: ProbeBoard
    /// what the board was made from: a reload that changes it makes a new board
    let signature: ProbeSignature
    /// each probe's timer, as a deadline (`ProbeOutput.arm`)
    var deadlines: [ProbeKey: USec] = [:]
    /// the one timer, armed for `timerAt` (≤ every deadline); nil when there is none
    var timer: EventSource?
    var timerAt: USec?
    /// set while the due probes are handled: the timer is armed once, after them
    var firing = false
    var inFlight: [ProbeKey: ProbeRun] = [:]
    /// each probe's target as its instance's current process uses it (placeholders filled,
    /// address parsed, request bytes made once): dropped at every change of the instance
    var targets: [ProbeKey: Result<ProbeTarget, ConfigValueProblem>] = [:]
    var requests: [ProbeKey: [UInt8]] = [:]
    /// each http probe's socket prober, kept between probes with its connection (keep-alive):
    /// dropped, and its connection closed, at every change of the instance
    var sockets: [ProbeKey: SocketProbe] = [:]
    /// timer accuracy: wake-ups of instances probed at the same interval coalesce
    let accuracy: [ProbeKind: UInt64]

    init?(config: ServiceConfig) {
        guard let board = ProbeBoard(config: config) else { return nil }
        self.board = board
        self.signature = ProbeSignature(config)
        var accuracy: [ProbeKind: UInt64] = [:]
        for kind in ProbeKind.allCases {
            if let p = board.probe(kind) { accuracy[kind] = min(max(p.interval / 10, 1_000), 250_000) }
        }
        self.accuracy = accuracy
    }

    /// Everything stops: timers, sockets, processes (killed, and still reaped).
    func stopAll() {
        deadlines.removeAll()
        timer = nil
        timerAt = nil
        for run in inFlight.values { run.cancel() }
        inFlight.removeAll()
        for socket in sockets.values { socket.cancel() }
        sockets.removeAll()
    }
}

/// The parts of a service's config its probes depend on.
struct ProbeSignature: Equatable {
    var liveness: ProbeConfig?
    var readiness: ProbeConfig?
    var ready: ReadyMode
    init(_ c: ServiceConfig) { liveness = c.liveness; readiness = c.readiness; ready = c.ready }
}

/// One probe in flight: a socket being connected or read, or a process.
protocol ProbeRun: AnyObject {
    /// Ends it without a result: closes the socket, kills the process (which is still reaped).
    func cancel()
}

extension Supervisor {
    /// An instance of `slot` entered `state` (every `stateChanged` passes here): its probes
    /// begin or end. Nothing at all for a service without probes.
    func probesInstanceChanged(_ slot: ServiceSlot, _ index: Int, _ state: InstanceState) {
        guard let probes = probesFor(slot) else { return }
        for kind in ProbeKind.allCases {
            probes.targets[ProbeKey(index, kind)] = nil
            probes.requests[ProbeKey(index, kind)] = nil
            probes.sockets.removeValue(forKey: ProbeKey(index, kind))?.cancel()
        }
        performProbes(probes.board.instanceChanged(index, to: state, now: now), slot: slot, probes: probes)
        if !state.isTransient && state != .running {
            // At rest (or scaled away): nothing of its probes is kept, not even a spent timer.
            for kind in ProbeKind.allCases { probes.deadlines[ProbeKey(index, kind)] = nil }
            if probes.deadlines.isEmpty { probes.timer = nil; probes.timerAt = nil }
        }
    }

    /// The slot's probes, made (or made again after a reload changed them) from its config;
    /// nil when the service has none.
    private func probesFor(_ slot: ServiceSlot) -> ServiceProbes? {
        guard let p = stack.entry(slot.id) else { return slot.probes }
        let config = p.machine.config
        if let probes = slot.probes, probes.signature == ProbeSignature(config) { return probes }
        slot.probes?.stopAll()
        slot.probes = ServiceProbes(config: config)
        guard let probes = slot.probes else { return nil }
        // Probes changed by a reload: the instances up now start from scratch under the new ones.
        for i in p.machine.instances where i.state == .starting || i.state == .running {
            performProbes(probes.board.instanceChanged(i.index, to: i.state, now: now), slot: slot, probes: probes)
        }
        return probes
    }

    func performProbes(_ outputs: [ProbeOutput], slot: ServiceSlot, probes: ServiceProbes) {
        for output in outputs {
            switch output {
            case let .arm(key, deadline):
                armProbeTimer(key, at: deadline, slot: slot, probes: probes)
            case let .run(key):
                startProbe(key, slot: slot, probes: probes)
            case let .stop(key):
                probes.deadlines[key] = nil
                probes.inFlight.removeValue(forKey: key)?.cancel()
            case let .event(index, event):
                handle(event, instance: index, of: slot)
            case let .note(index, note):
                let priority: Priority = note.level == .info ? .info : note.level == .warning ? .warning : .err
                log.write(LogEvent(priority, note.event, "\(slot.name).\(index) \(note.message)",
                                   service: slot.name, instance: index, pid: slot.processes[index]?.pid))
            }
        }
    }

    private func armProbeTimer(_ key: ProbeKey, at deadline: USec, slot: ServiceSlot, probes: ServiceProbes) {
        probes.deadlines[key] = deadline
        if !probes.firing, probes.timerAt.map({ deadline < $0 }) ?? true {
            armServiceProbeTimer(at: deadline, slot: slot, probes: probes)
        }
    }

    /// The service's one probe timer, for `deadline`; it may fire up to the accuracy late
    /// (a tenth of the interval, at most 250 ms), so the probes of many instances coalesce.
    private func armServiceProbeTimer(at deadline: USec, slot: ServiceSlot, probes: ServiceProbes) {
        probes.timerAt = deadline
        if let timer = probes.timer, (try? timer.reschedule(at: deadline)) != nil { return }
        do {
            probes.timer = try loop.timer(at: deadline, accuracy: probes.accuracy.values.min() ?? 1_000) {
                [weak self, weak slot, weak probes] in
                guard let self, let slot, let probes, slot.probes === probes else { return }
                self.serviceProbeTimerFired(slot: slot, probes: probes)
            }
        } catch {
            probes.timerAt = nil
            log.error("probe", "\(slot.name): cannot arm the probe timer: \(error)", service: slot.name)
        }
    }

    /// Every probe whose deadline has come is handled (in no particular order), then the timer
    /// is armed for the earliest deadline left, if any.
    private func serviceProbeTimerFired(slot: ServiceSlot, probes: ServiceProbes) {
        let now = self.now
        probes.timerAt = nil
        probes.firing = true
        for (key, deadline) in probes.deadlines where deadline <= now {
            // (an earlier one's outcome may have stopped or re-armed this one, or replaced the board)
            guard slot.probes === probes, let d = probes.deadlines[key], d <= now else { continue }
            probes.deadlines[key] = nil
            performProbes(probes.board.timerFired(key, now: now), slot: slot, probes: probes)
        }
        probes.firing = false
        guard slot.probes === probes else { return }
        if let next = probes.deadlines.values.min() {
            armServiceProbeTimer(at: next, slot: slot, probes: probes)
        } else {
            probes.timer = nil // at rest: no timer kept
        }
    }

    /// Starts the probe; its result comes back through `probeFinished`.
    private func startProbe(_ key: ProbeKey, slot: ServiceSlot, probes: ServiceProbes) {
        guard let probe = probes.board.probe(key.kind) else { return }
        let target: Result<ProbeTarget, ConfigValueProblem>
        if let known = probes.targets[key] {
            target = known
        } else {
            guard let entry = stack.entry(slot.id) else { return }
            target = ProbeTargets.target(probe.check, instance: key.instance, sockets: entry.machine.config.sockets)
            probes.targets[key] = target
            if case let .success(.http(url)) = target { probes.requests[key] = SocketProbe.request(url) }
        }
        let done: (Bool, String) -> Void = { [weak self, weak slot, weak probes] passed, detail in
            guard let self, let slot, let probes, slot.probes === probes else { return }
            self.probeFinished(key, passed: passed, detail: detail, slot: slot, probes: probes)
        }
        guard slot.processes[key.instance]?.pid != nil else {
            // Probing starts as the instance does; its main process may not be there yet (a
            // spawn under way, a pre-start running): not ready, and nothing to check alive.
            done(false, "its main process has not started yet")
            return
        }
        let run: ProbeRun?
        switch target {
        case let .failure(problem):
            run = nil
            done(false, problem.message)
        case let .success(.tcp(address)):
            run = SocketProbe.start(loop: loop, address: address, request: nil, done: done)
        case let .success(.http(url)):
            let socket = probes.sockets[key] ?? SocketProbe(loop: loop, address: url.address, request: probes.requests[key])
            probes.sockets[key] = socket
            run = socket.run(now: now, done) ? socket : nil
        case let .success(.exec(argv)):
            guard let entry = stack.entry(slot.id) else { return }
            run = startExecProbe(argv, index: key.instance, config: entry.machine.config, slot: slot, done: done)
        }
        if let run { probes.inFlight[key] = run }
    }

    private func probeFinished(_ key: ProbeKey, passed: Bool, detail: String, slot: ServiceSlot, probes: ServiceProbes) {
        probes.inFlight[key] = nil
        let outputs = probes.board.finished(key, passed: passed, detail: detail, now: now)
        if !passed, outputs.contains(.event(instance: key.instance, .probed(.failing))) {
            // The first failure of a passing (or new) process: why, once.
            log.write(LogEvent(.info, "probe", "\(slot.name).\(key.instance) \(key.kind.rawValue) probe failed: \(detail)",
                               service: slot.name, instance: key.instance, pid: slot.processes[key.instance]?.pid))
        }
        performProbes(outputs, slot: slot, probes: probes)
    }

    /// `exec = [...]`: the instance's environment (placeholders filled) plus `RINGMASTER_PID`,
    /// in its working directory, output to /dev/null; exit 0 passes. Watched by its pidfd.
    private func startExecProbe(_ argv: [String], index: Int, config: ServiceConfig, slot: ServiceSlot,
                                done: @escaping (Bool, String) -> Void) -> ProbeRun? {
        let cfg = config.forInstance(index)
        var env = environment.forChild(service: cfg, instance: index, notifySocket: "")
        env.removeAll { $0.hasPrefix("NOTIFY_SOCKET=") || $0.hasPrefix("LISTEN_FDS=") || $0.hasPrefix("LISTEN_FDNAMES=") }
        if let pid = slot.processes[index]?.pid { env.append("RINGMASTER_PID=\(pid)") }
        var request = SpawnRequest(argv: argv, environment: env)
        request.stdin = environment.devNull
        request.stdout = environment.devNull
        request.stderr = environment.devNull
        request.workingDirectory = environment.workingDirectory(for: cfg)
        request.nofileSoftLimit = environment.nofileSoftLimit
        let child: SpawnedProcess
        do {
            child = try spawner.spawn(request)
        } catch {
            done(false, "\(error)")
            return nil
        }
        let run = ExecProbe(pid: child.pid)
        do {
            run.source = try loop.watchChild(pidfd: child.pidfd) { [weak run] exit in
                ExecProbe.lingering[exit.pid] = nil
                guard let run, !run.cancelled else { return }
                run.source = nil
                let status = ExitStatus(exit)
                done(status.isSuccess, "\(argv[0]) \(status)")
            }
        } catch {
            _ = kill(-child.pid, SIGKILL)
            close(child.pidfd)
            done(false, "watching probe pid \(child.pid): \(error)")
            return nil
        }
        return run
    }
}

/// An `exec` probe's process. Cancelled (a timeout, the instance going): its process group is
/// SIGKILLed, and its source kept in `lingering` until the exit is reaped.
final class ExecProbe: ProbeRun {
    let pid: Int32
    var source: EventSource?
    var cancelled = false
    /// cancelled probes' processes, until reaped (the loop is single-threaded)
    nonisolated(unsafe) static var lingering: [Int32: EventSource] = [:]

    init(pid: Int32) { self.pid = pid }

    deinit { cancel() }

    func cancel() {
        guard !cancelled else { return }
        cancelled = true
        guard let source else { return }
        self.source = nil
        _ = kill(-pid, SIGKILL) // its own process group (setsid in the child)
        ExecProbe.lingering[pid] = source
    }
}
