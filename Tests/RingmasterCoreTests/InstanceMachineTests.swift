import XCTest
import Glibc
private let SIGABRT_: Int32 = SIGABRT
@testable import RingmasterCore

/// The config the instance tables run with: `web`, 100 ms restart delay doubling up to 1 s,
/// stable after 10 s, at most 5 starts in 10 s; `edit` changes the rest.
func instanceTestConfig(_ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
    var c = ServiceConfig(name: "web", command: ["sleep", "1000"])
    c.restartDelay = 100 * USec.perMillisecond
    c.restartDelayMax = 1 * USec.perSecond
    c.stableAfter = 10 * USec.perSecond
    c.startLimit = StartLimit(count: 5, interval: 10 * USec.perSecond)
    edit(&c)
    return c
}

/// Tables of event → state/actions for one instance, with a manual clock.
final class InstanceMachineTests: XCTestCase {
    typealias Step = (at: USec, event: InstanceEvent, state: InstanceState, actions: [InstanceAction])

    let ms = USec.perMillisecond
    let s = USec.perSecond

    func config(_ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig { instanceTestConfig(edit) }

    func run(_ steps: [Step], config: ServiceConfig, file: StaticString = #filePath, line: UInt = #line) -> InstanceMachine {
        var m = InstanceMachine(index: 0)
        for (i, step) in steps.enumerated() {
            let actions = m.handle(step.event, config: config, now: step.at)
            XCTAssertEqual(m.state, step.state, "step \(i) (\(step.event)): state", file: file, line: line)
            XCTAssertEqual(actions, step.actions, "step \(i) (\(step.event)): actions", file: file, line: line)
        }
        return m
    }

    func testStartedReadyOnExec() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: config())
        XCTAssertEqual(m.pid, 42)
        XCTAssertTrue(m.wanted)
    }

    func testAbortEndsAsAFailureWithItsReason() {
        let cfg = config { $0.restart = .always }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
            (2 * s, .abort(.watchdog, signal: SIGABRT_), .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(SIGABRT_), .armTimer(.stopTimeout, deadline: 2 * s + cfg.stopTimeout)]),
            (2 * s + cfg.stopTimeout, .timerFired(.stopTimeout), .stopping, [.killAll]),
            (3 * s + cfg.stopTimeout, .processExited(.killed(9)), .backoff,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .backoff),
              .armTimer(.restart, deadline: 3 * s + cfg.stopTimeout + 100 * ms)]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .watchdog)
        XCTAssertFalse(m.aborting)
        XCTAssertEqual(m.consecutiveFailures, 1)
    }

    func testAbortUnderRestartNeverFailsWithTheReason() {
        let cfg = config { $0.restart = .never }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
            (2, .abort(.liveness), .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(cfg.stopSignal), .signal(SIGCONT),
              .armTimer(.stopTimeout, deadline: 2 + cfg.stopTimeout)]),
            (3, .processExited(.killed(15)), .failed,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .failed),
              .gaveUp(reason: "liveness: killed by SIGTERM; restart = \"never\"")]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .liveness)
    }

    func testAbortIsIgnoredWithoutAProcessAndARestartSkipsTheBackoff() {
        let cfg = config { $0.restart = .always }
        _ = run([
            (0, .abort(.watchdog), .stopped, []),
            (1, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (2, .abort(.readyTimeout), .starting, []), // spawn still in flight: no process to abort
            (3, .spawned(pid: 7), .running, [.stateChanged(from: .starting, to: .running)]),
            (4, .abort(.liveness), .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(cfg.stopSignal), .signal(SIGCONT),
              .armTimer(.stopTimeout, deadline: 4 + cfg.stopTimeout)]),
            (5, .restartRequested, .stopping, []),
            (6, .processExited(.killed(15)), .starting,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .starting), .spawn]),
        ], config: cfg)
    }

    func testEachReadyModeHasOneSourceOfReadiness() {
        let probe = config { $0.ready = .probe }
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 1 + probe.readyTimeout)]),
            (2, .readyNotified, .starting, []), // READY=1: the readiness probe decides
            (3, .readinessProbePassed, .running,
             [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .running)]),
        ], config: probe)
        let notify = config { $0.ready = .notify }
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 1 + notify.readyTimeout)]),
            (2, .readinessProbePassed, .starting, []),
            (3, .readyNotified, .running, [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .running)]),
        ], config: notify)
    }

    func testNotedCauseNamesTheExit() {
        let cfg = config { $0.restart = .always }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
            (2, .causeNoted(.oomKill), .running, []),
            (3, .processExited(.killed(9)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 3 + 100 * ms)]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .oomKill)
        XCTAssertNil(m.endingCause)
    }

    func testProbeResultIsKeptForTheCurrentProcessOnly() {
        let cfg = config { $0.restart = .always }
        var m = InstanceMachine(index: 0)
        _ = m.handle(.probed(.passing), config: cfg, now: 0)
        XCTAssertNil(m.health, "no process: nothing to record")
        _ = m.handle(.startRequested, config: cfg, now: 0)
        _ = m.handle(.spawned(pid: 3), config: cfg, now: 1)
        XCTAssertEqual(m.handle(.probed(.failing), config: cfg, now: 2), [])
        XCTAssertEqual(m.health, .failing)
        _ = m.handle(.processExited(.exited(1)), config: cfg, now: 3)
        _ = m.handle(.timerFired(.restart), config: cfg, now: 1_000_000)
        XCTAssertNil(m.health, "a new process starts with no result")
    }

    func testNotifyReadyWaitsForReady() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 1 + 90 * s)]),
            (5, .readyNotified, .running, [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .running)]),
            (6, .readyNotified, .running, []),
        ], config: config { $0.ready = .notify })
    }

    func testReadyBeforeSpawnedIsIgnored() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .readyNotified, .starting, []),
        ], config: config { $0.ready = .notify })
    }

    func testCrashBacksOffThenRestarts() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (1 * s, .processExited(.exited(1)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 1 * s + 100 * ms)]),
            (1 * s + 100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (1 * s + 100 * ms, .spawned(pid: 2), .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: config())
        XCTAssertEqual(m.restarts, 1)
        XCTAssertEqual(m.lastExit, .exited(1))
    }

    func testBackoffDoublesUpToMaxAndResetsAfterStableRun() {
        let c = config { $0.startLimit = StartLimit(count: 100, interval: 10 * s) }
        var m = InstanceMachine(index: 0)
        var now: USec = 0
        _ = m.handle(.startRequested, config: c, now: now)
        var delays: [USec] = []
        for pid in 1...6 {
            _ = m.handle(.spawned(pid: Int32(pid)), config: c, now: now)
            now += 1 * ms
            let actions = m.handle(.processExited(.killed(9)), config: c, now: now)
            guard case let .armTimer(.restart, deadline)? = actions.last else { return XCTFail("no restart timer: \(actions)") }
            delays.append(deadline - now)
            now = deadline
            _ = m.handle(.timerFired(.restart), config: c, now: now)
        }
        XCTAssertEqual(delays, [100 * ms, 200 * ms, 400 * ms, 800 * ms, 1 * s, 1 * s])

        // a run of stable-after or longer resets the doubling
        _ = m.handle(.spawned(pid: 7), config: c, now: now)
        now += 10 * s
        let actions = m.handle(.processExited(.exited(0)), config: c, now: now)
        XCTAssertEqual(actions.last, .armTimer(.restart, deadline: now + 100 * ms))
    }

    func testZeroDelayStillGoesThroughATimer() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (5, .processExited(.killed(9)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 5)]),
        ], config: config { $0.restartDelay = 0 })
    }

    func testStartLimitGivesUp() {
        // count = 3 within 10s: the 3rd failure within the window fails the instance; 3 starts in all.
        let c = config { $0.startLimit = StartLimit(count: 3, interval: 10 * s); $0.restartDelay = 10 * ms }
        var m = InstanceMachine(index: 0)
        var spawns = 0
        var now: USec = 0
        var last: [InstanceAction] = m.handle(.startRequested, config: c, now: now)
        while true {
            if last.contains(.spawn) {
                spawns += 1
                _ = m.handle(.spawned(pid: Int32(spawns)), config: c, now: now)
                now += 1 * ms
                last = m.handle(.processExited(.exited(1)), config: c, now: now)
            } else if case let .armTimer(.restart, deadline)? = last.last {
                now = deadline
                last = m.handle(.timerFired(.restart), config: c, now: now)
            } else { break }
        }
        XCTAssertEqual(spawns, 3)
        XCTAssertEqual(m.state, .failed)
        XCTAssertEqual(last.last, .gaveUp(reason: "start limit hit: 3 starts within 10s; last: exited with status 1"))
        XCTAssertEqual(m.failureReason, "start limit hit: 3 starts within 10s; last: exited with status 1")

        // a start command clears the failure and the history
        let again = m.handle(.startRequested, config: c, now: now)
        XCTAssertEqual(again, [.stateChanged(from: .failed, to: .starting), .spawn])
        XCTAssertNil(m.failureReason)
    }

    func testStartsOutsideTheWindowDoNotCount() {
        let c = config { $0.startLimit = StartLimit(count: 2, interval: 1 * s); $0.restartDelay = 2 * s; $0.restartDelayMax = 2 * s }
        var m = InstanceMachine(index: 0)
        var now: USec = 0
        _ = m.handle(.startRequested, config: c, now: now)
        for pid in 1...5 {
            _ = m.handle(.spawned(pid: Int32(pid)), config: c, now: now)
            let a = m.handle(.processExited(.exited(1)), config: c, now: now)
            XCTAssertEqual(m.state, .backoff, "\(a)")
            now += 2 * s
            _ = m.handle(.timerFired(.restart), config: c, now: now)
        }
    }

    func testRestartPolicies() {
        let rows: [(RestartPolicy, ExitStatus, InstanceState)] = [
            (.always, .exited(0), .backoff),
            (.always, .exited(3), .backoff),
            (.always, .killed(9), .backoff),
            (.onFailure, .exited(0), .exited),
            (.onFailure, .exited(3), .backoff),
            (.onFailure, .killed(11), .backoff),
            (.never, .exited(0), .exited),
            (.never, .exited(3), .failed),
            (.never, .killed(9), .failed),
        ]
        for (policy, exit, expected) in rows {
            let c = config { $0.restart = policy }
            var m = InstanceMachine(index: 0)
            _ = m.handle(.startRequested, config: c, now: 0)
            _ = m.handle(.spawned(pid: 1), config: c, now: 0)
            let actions = m.handle(.processExited(exit), config: c, now: 1)
            XCTAssertEqual(m.state, expected, "\(policy) \(exit)")
            XCTAssertEqual(actions.first, .killAll, "leftovers are always killed")
            if expected == .failed {
                XCTAssertEqual(actions.last, .gaveUp(reason: "\(exit); restart = \"never\""))
            }
        }
    }

    func testStopEscalatesToKillAfterTimeout() {
        let c = config { $0.stopSignal = 2; $0.stopTimeout = 3 * s }
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (1 * s, .stopRequested, .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(2), .armTimer(.stopTimeout, deadline: 4 * s)]),
            (4 * s, .timerFired(.stopTimeout), .stopping, [.killAll]),
            (4 * s + 1, .processExited(.killed(9)), .stopped,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .stopped)]),
        ], config: c)
    }

    func testStopBeforeTimeoutCancelsTimerAndIsNotAFailure() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (1, .stopRequested, .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(15), .armTimer(.stopTimeout, deadline: 1 + 10 * s)]),
            (2, .processExited(.killed(15)), .stopped,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .stopped)]),
            (3, .timerFired(.stopTimeout), .stopped, []),
        ], config: config())
        XCTAssertEqual(m.restarts, 0)
        XCTAssertFalse(m.wanted)
    }

    func testStopDuringBackoffCancelsRestart() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (1, .processExited(.exited(1)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 1 + 100 * ms)]),
            (2, .stopRequested, .stopped, [.cancelTimer(.restart), .stateChanged(from: .backoff, to: .stopped)]),
            (100 * ms + 1, .timerFired(.restart), .stopped, []),
        ], config: config())
    }

    func testRestartCommandStopsThenSpawns() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (1, .restartRequested, .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(15), .armTimer(.stopTimeout, deadline: 1 + 10 * s)]),
            (2, .processExited(.killed(15)), .starting,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .starting), .spawn]),
            (2, .spawned(pid: 2), .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: config())
    }

    func testStartWhileStoppingComesBackUp() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 1), .running, [.stateChanged(from: .starting, to: .running)]),
            (1, .stopRequested, .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(15), .armTimer(.stopTimeout, deadline: 1 + 10 * s)]),
            (2, .startRequested, .stopping, []),
            (3, .processExited(.exited(0)), .starting,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .starting), .spawn]),
        ], config: config())
    }

    func testSpawnFailureCountsAsAFailedStart() {
        let c = config { $0.startLimit = StartLimit(count: 2, interval: 10 * s) }
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawnFailed(reason: "exec python4: No such file or directory"), .backoff,
             [.stateChanged(from: .starting, to: .backoff), .armTimer(.restart, deadline: 100 * ms)]),
            (100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (100 * ms, .spawnFailed(reason: "exec python4: No such file or directory"), .failed,
             [.stateChanged(from: .starting, to: .failed),
              .gaveUp(reason: "start limit hit: 2 starts within 10s; last: exec python4: No such file or directory")]),
        ], config: c)
    }

    func testStaleEventsAreIgnored() {
        run([
            (0, .processExited(.exited(0)), .stopped, []),
            (0, .spawned(pid: 3), .stopped, []),
            (0, .timerFired(.restart), .stopped, []),
            (0, .timerFired(.stopTimeout), .stopped, []),
            (0, .stopRequested, .stopped, []),
        ], config: config())
    }

    func testFormatDuration() {
        XCTAssertEqual(formatDuration(10 * s), "10s")
        XCTAssertEqual(formatDuration(1500 * ms), "1500ms")
        XCTAssertEqual(formatDuration(120 * s), "2min")
        XCTAssertEqual(formatDuration(3600 * s), "1h")
        XCTAssertEqual(formatDuration(7), "7us")
    }
}

final class ExitReasonTests: XCTestCase {
    func testReasonFollowsTheStatusAndSpawnFailures() {
        var config = ServiceConfig(name: "web", command: ["sleep", "1000"])
        config.restart = .always
        config.restartDelay = USec.perMillisecond
        config.startLimit = StartLimit(count: 100, interval: USec.perSecond)
        var m = InstanceMachine(index: 0)
        XCTAssertNil(m.lastExitReason)
        _ = m.handle(.startRequested, config: config, now: 0)
        _ = m.handle(.spawned(pid: 10), config: config, now: 1)
        _ = m.handle(.processExited(.exited(3)), config: config, now: 2)
        XCTAssertEqual(m.lastExitReason, .exitCode)
        _ = m.handle(.timerFired(.restart), config: config, now: 10_000_000)
        _ = m.handle(.spawned(pid: 11), config: config, now: 10_000_001)
        _ = m.handle(.processExited(.killed(9)), config: config, now: 10_000_002)
        XCTAssertEqual(m.lastExitReason, .signal)
        _ = m.handle(.timerFired(.restart), config: config, now: 20_000_000)
        _ = m.handle(.spawned(pid: 12), config: config, now: 20_000_001)
        _ = m.handle(.processExited(ExitStatus(code: .dumped, status: 11)), config: config, now: 20_000_002)
        XCTAssertEqual(m.lastExitReason, .coreDump)
        _ = m.handle(.timerFired(.restart), config: config, now: 40_000_000)
        _ = m.handle(.spawnFailed(reason: "exec x: No such file or directory"), config: config, now: 40_000_001)
        XCTAssertEqual(m.lastExitReason, .spawn)
    }

    func testServiceKeepsTheLastReason() {
        var config = ServiceConfig(name: "web", command: ["sleep", "1000"])
        config.instances = 2
        config.restart = .never
        var s = ServiceMachine(config: config)
        _ = s.handle(.startRequested, instance: 0, now: 0)
        _ = s.handle(.spawned(pid: 5), instance: 0, now: 1)
        XCTAssertNil(s.lastExitReason)
        _ = s.handle(.processExited(.killed(15)), instance: 0, now: 2)
        XCTAssertEqual(s.lastExitReason, .signal)
    }

    /// What the journal's exited entry says (read before the exit is handled) is what the
    /// exit leaves in lastExitReason: a noted cause, an abort's reason, or the bare status.
    func testExitReasonBeforeTheExitIsTheReasonItLeaves() {
        var cfg = ServiceConfig(name: "web", command: ["sleep", "1000"])
        cfg.restart = .always
        cfg.startLimit = StartLimit(count: 100, interval: USec.perSecond)
        let cases: [(InstanceEvent?, ExitStatus, ExitReason)] = [
            (nil, .exited(0), .exitCode),
            (nil, .killed(SIGTERM), .signal),
            (nil, ExitStatus(code: .dumped, status: SIGSEGV), .coreDump),
            (.causeNoted(.oomKill), .killed(SIGKILL), .oomKill),
            (.abort(.watchdog, signal: SIGABRT_), .killed(SIGABRT_), .watchdog),
            (.abort(.memoryRestart), .exited(0), .memoryRestart),
        ]
        for (before, status, reason) in cases {
            var m = InstanceMachine(index: 0)
            _ = m.handle(.startRequested, config: cfg, now: 0)
            _ = m.handle(.spawned(pid: 9), config: cfg, now: 1)
            if let before { _ = m.handle(before, config: cfg, now: 2) }
            XCTAssertEqual(m.exitReason(for: status), reason, "\(String(describing: before)) \(status)")
            _ = m.handle(.processExited(status), config: cfg, now: 3)
            XCTAssertEqual(m.lastExitReason, reason, "\(String(describing: before)) \(status)")
        }
    }

    func testStackTellsTheReasonOfAnExitBeforeHandlingIt() {
        var c = ServiceConfig(name: "web", command: ["sleep", "1000"])
        c.restart = .always
        var stack = Stack(config: Config(services: [c]))
        _ = stack.boot(now: 0)
        let id = stack.entry(named: "web")!.id
        _ = stack.handle(.spawned(pid: 5), service: id, instance: 0, now: 1)
        _ = stack.handle(.causeNoted(.oomKill), service: id, instance: 0, now: 2)
        XCTAssertEqual(stack.exitReason(id, 0, for: .killed(SIGKILL)), .oomKill)
        XCTAssertNil(stack.exitReason(id, 7, for: .killed(SIGKILL)))
        _ = stack.handle(.processExited(.killed(SIGKILL)), service: id, instance: 0, now: 3)
        XCTAssertEqual(stack.entry(id)?.machine.lastExitReason, .oomKill)
    }
}
