import XCTest
@testable import RingmasterCore

/// `ready-timeout`: tables of event → state/actions for one instance whose `ready` mode
/// needs readiness (InstanceMachineTests' helpers), and the key's parsing.
extension InstanceMachineTests {
    /// `ready = "notify"` and a ready-timeout of 5 s.
    func notifyConfig(_ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
        config { c in
            c.ready = .notify
            c.readyTimeout = 5 * s
            edit(&c)
        }
    }

    func testReadyTimeoutNotReadyInTimeIsAFailedStartWithItsReason() {
        let cfg = notifyConfig()
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

    func testReadyTimeoutUnderRestartNeverItFailsNamingTheTimeout() {
        let cfg = notifyConfig { $0.restart = .never }
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

    func testReadyTimeoutAnExitBeforeReadyCancelsTheTimer() {
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (1 * s, .processExited(.exited(1)), .backoff,
             [.killAll, .cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .backoff),
              .armTimer(.restart, deadline: 1 * s + 100 * ms)]),
            // a late firing of the cancelled timer (already queued) changes nothing
            (5 * s, .timerFired(.readyTimeout), .backoff, []),
        ], config: notifyConfig())
    }

    func testReadyTimeoutAStopBeforeReadyCancelsTheTimer() {
        let cfg = notifyConfig()
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (1, .stopRequested, .stopping,
             [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal),
              .armTimer(.stopTimeout, deadline: 1 + cfg.stopTimeout)]),
            (2, .processExited(.killed(15)), .stopped,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .stopped)]),
        ], config: cfg)
    }

    func testReadyTimeoutEachProcessGetsItsOwnTimer() {
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 5 * s)]),
            (1 * s, .processExited(.exited(1)), .backoff,
             [.killAll, .cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .backoff),
              .armTimer(.restart, deadline: 1 * s + 100 * ms)]),
            (1 * s + 100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (2 * s, .spawned(pid: 43), .starting, [.armTimer(.readyTimeout, deadline: 7 * s)]),
            (3 * s, .readyNotified, .running, [.cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .running)]),
            (7 * s, .timerFired(.readyTimeout), .running, []),
        ], config: notifyConfig())
    }

    func testReadyTimeoutNoTimerWhenReadyAtExecOrWhenZero() {
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: notifyConfig { $0.ready = .started })
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (0, .spawned(pid: 42), .starting, []),
            (900 * s, .readyNotified, .running, [.stateChanged(from: .starting, to: .running)]),
        ], config: notifyConfig { $0.readyTimeout = 0 })
    }

    func testReadyTimeoutTheKey() throws {
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
