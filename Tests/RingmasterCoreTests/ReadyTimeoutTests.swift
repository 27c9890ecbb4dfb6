import XCTest
@testable import RingmasterCore

/// `ready-timeout`: a table of event → state/actions for one instance whose `ready` mode
/// needs readiness, and the key's parsing.
final class ReadyTimeoutTests: XCTestCase {
    typealias Step = (at: USec, event: InstanceEvent, state: InstanceState, actions: [InstanceAction])
    let ms = USec.perMillisecond
    let s = USec.perSecond

    func config(_ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
        var c = ServiceConfig(name: "web", command: ["sleep", "1000"])
        c.ready = .notify
        c.readyTimeout = 5 * s
        c.restartDelay = 100 * ms
        c.restartDelayMax = 1 * s
        edit(&c)
        return c
    }

    @discardableResult
    func run(_ steps: [Step], config: ServiceConfig, file: StaticString = #filePath, line: UInt = #line) -> InstanceMachine {
        var m = InstanceMachine(index: 0)
        for (i, step) in steps.enumerated() {
            let actions = m.handle(step.event, config: config, now: step.at)
            XCTAssertEqual(m.state, step.state, "step \(i) (\(step.event)): state", file: file, line: line)
            XCTAssertEqual(actions, step.actions, "step \(i) (\(step.event)): actions", file: file, line: line)
        }
        return m
    }

    func testNotReadyInTimeIsAFailedStartWithItsReason() {
        let cfg = config()
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 1 + 5 * s)]),
            (1 + 5 * s, .timerFired(.readyTimeout), .stopping,
             [.stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal),
              .armTimer(.stopTimeout, deadline: 1 + 5 * s + cfg.stopTimeout)]),
            (2 + 5 * s, .processExited(.killed(15)), .backoff,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .backoff),
              .armTimer(.restart, deadline: 2 + 5 * s + 100 * ms)]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .readyTimeout)
        XCTAssertEqual(m.consecutiveFailures, 1)
        XCTAssertFalse(m.readyTimerArmed)
    }

    func testUnderRestartNeverItFailsNamingTheTimeout() {
        let cfg = config { $0.restart = .never }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (5 * s, .timerFired(.readyTimeout), .stopping,
             [.stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal),
              .armTimer(.stopTimeout, deadline: 5 * s + cfg.stopTimeout)]),
            (5 * s + 1, .processExited(.killed(15)), .failed,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .failed),
              .gaveUp(reason: "ready-timeout: killed by SIGTERM; restart = \"never\"")]),
        ], config: cfg)
        XCTAssertEqual(m.failureReason, "ready-timeout: killed by SIGTERM; restart = \"never\"")
    }

    func testAnExitBeforeReadyCancelsTheTimer() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (1 * s, .processExited(.exited(1)), .backoff,
             [.killAll, .cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .backoff),
              .armTimer(.restart, deadline: 1 * s + 100 * ms)]),
            // a late firing of the cancelled timer (already queued) changes nothing
            (5 * s, .timerFired(.readyTimeout), .backoff, []),
        ], config: config())
    }

    func testAStopBeforeReadyCancelsTheTimer() {
        let cfg = config()
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (1, .stopRequested, .stopping,
             [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal),
              .armTimer(.stopTimeout, deadline: 1 + cfg.stopTimeout)]),
            (2, .processExited(.killed(15)), .stopped,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .stopped)]),
        ], config: cfg)
    }

    func testEachProcessGetsItsOwnTimer() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (1 * s, .processExited(.exited(1)), .backoff,
             [.killAll, .cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .backoff),
              .armTimer(.restart, deadline: 1 * s + 100 * ms)]),
            (1 * s + 100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (2 * s, .spawned(pid: 43), .starting, [.armTimer(.readyTimeout, deadline: 7 * s)]),
            (3 * s, .readyNotified, .running, [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .running)]),
            (7 * s, .timerFired(.readyTimeout), .running, []),
        ], config: config())
    }

    func testNoTimerWhenReadyAtExecOrWhenZero() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: config { $0.ready = .started })
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, []),
            (900 * s, .readyNotified, .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: config { $0.readyTimeout = 0 })
    }

    func testTheKey() throws {
        func load(_ line: String) throws -> ServiceConfig? {
            let text = "[services.web]\ncommand = [\"x\"]\nready = \"notify\"\n\(line)\n"
            return try ConfigLoader.parse(text: text, file: "r.toml").service(named: "web")
        }
        XCTAssertEqual(try load("")?.readyTimeout, 90 * s, "default 90s")
        XCTAssertEqual(try load("ready-timeout = \"2s\"")?.readyTimeout, 2 * s)
        XCTAssertEqual(try load("ready-timeout = \"0\"")?.readyTimeout, 0)
        XCTAssertThrowsError(try load("ready-timeout = \"soon\"")) { error in
            XCTAssertTrue("\(error)".contains("r.toml:4:17"), "\(error)")
        }
        XCTAssertThrowsError(try load("ready-timeout = 5")) { error in
            XCTAssertTrue("\(error)".contains("ready-timeout"), "\(error)")
        }
    }
}
