import XCTest
@testable import RingmasterCore

/// `type = "oneshot"` and `pre-start`: the instance tables, the service state they give, and
/// what a oneshot means to the services `after` it.
extension InstanceMachineTests {
    func oneshot(_ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
        config { c in
            c.type = .oneshot
            c.restart = .never
            c.readyTimeout = 0 // these tables are about the run itself (ready-timeout: below)
            edit(&c)
        }
    }

    /// `ready-timeout` limits a oneshot's run: armed at the spawn, cancelled by its exit; a
    /// task still running when it fires is a failed start with reason `ready-timeout`.
    func testReadyTimeoutLimitsAOneshotsRun() {
        let cfg = oneshot { $0.readyTimeout = 5 * self.s }
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 1 + 5 * s)]),
            (2, .processExited(.exited(0)), .exited,
             [.killAll, .cancelTimer(.readyTimeout), .stateChanged(from: .starting, to: .exited)]),
        ], config: cfg)
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, [.armTimer(.readyTimeout, deadline: 1 + 5 * s)]),
            (1 + 5 * s, .timerFired(.readyTimeout), .stopping,
             [.stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal),
              .armTimer(.stopTimeout, deadline: 1 + 5 * s + cfg.stopTimeout)]),
            (2 + 5 * s, .processExited(.killed(15)), .failed,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .failed),
              .gaveUp(reason: "ready-timeout: killed by SIGTERM; restart = \"never\"")]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .readyTimeout)
    }

    func testAOneshotStaysStartingWhileItRunsAndExitsForGoodOnSuccess() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, []),
            (2, .readyNotified, .starting, []), // READY=1 means nothing to a task
            (3, .processExited(.exited(0)), .exited, [.killAll, .stateChanged(from: .starting, to: .exited)]),
        ], config: oneshot())
        XCTAssertNil(m.failureReason)
        XCTAssertEqual(m.lastExitReason, .exitCode)
    }

    func testAFailedOneshotUnderNeverFails() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, []),
            (3, .processExited(.exited(3)), .failed,
             [.killAll, .stateChanged(from: .starting, to: .failed),
              .gaveUp(reason: "exited with status 3; restart = \"never\"")]),
        ], config: oneshot())
        XCTAssertEqual(m.failureReason, "exited with status 3; restart = \"never\"")
    }

    func testAOneshotUnderOnFailureRetriesWithBackoffUpToTheStartLimit() {
        let cfg = oneshot {
            $0.restart = .onFailure
            $0.startLimit = StartLimit(count: 2, interval: 10 * self.s)
        }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, []),
            (2, .processExited(.exited(1)), .backoff,
             [.killAll, .stateChanged(from: .starting, to: .backoff), .armTimer(.restart, deadline: 2 + 100 * ms)]),
            (2 + 100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (3 + 100 * ms, .spawned(pid: 43), .starting, []),
            (4 + 100 * ms, .processExited(.exited(1)), .failed,
             [.killAll, .stateChanged(from: .starting, to: .failed),
              .gaveUp(reason: "start limit hit: 2 starts within 10s; last: exited with status 1")]),
            // a start command runs it again, from a clean slate
            (5 * s, .startRequested, .starting, [.stateChanged(from: .failed, to: .starting), .spawn]),
            (5 * s + 1, .spawned(pid: 44), .starting, []),
            (5 * s + 2, .processExited(.exited(0)), .exited, [.killAll, .stateChanged(from: .starting, to: .exited)]),
        ], config: cfg)
        XCTAssertEqual(m.restarts, 1)
    }

    func testPreStartRunsBeforeEachSpawnAndItsSuccessLetsTheSpawnGo() {
        let cfg = config { $0.preStart = ["/bin/prepare"] }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .preStart]),
            (1, .preStartSpawned(pid: 40), .starting, []),
            (2, .readyNotified, .starting, []),
            (3, .preStartExited(.exited(0)), .starting, [.killAll, .spawn]),
            (4, .spawned(pid: 41), .running, [.stateChanged(from: .starting, to: .running)]),
            // a crash: the restart runs the pre-start again
            (5, .processExited(.exited(1)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 5 + 100 * ms)]),
            (5 + 100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .preStart]),
        ], config: cfg)
        XCTAssertTrue(m.inPreStart)
        XCTAssertNil(m.pid)
    }

    func testAFailingPreStartIsAFailedStartWithReasonPreStart() {
        let cfg = config {
            $0.preStart = ["/bin/prepare"]
            $0.startLimit = StartLimit(count: 2, interval: 10 * self.s)
        }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .preStart]),
            (1, .preStartSpawned(pid: 40), .starting, []),
            (2, .preStartExited(.exited(4)), .backoff,
             [.killAll, .stateChanged(from: .starting, to: .backoff), .armTimer(.restart, deadline: 2 + 100 * ms)]),
            (2 + 100 * ms, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .preStart]),
            (3 + 100 * ms, .preStartFailed(reason: "exec /bin/prepare: No such file or directory"), .failed,
             [.stateChanged(from: .starting, to: .failed),
              .gaveUp(reason: "start limit hit: 2 starts within 10s; last: pre-start: exec /bin/prepare: No such file or directory")]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .preStart)
        XCTAssertEqual(m.lastExit, .exited(127))
    }

    func testAFailingPreStartUnderNeverFailsAtOnce() {
        let cfg = config { $0.preStart = ["/bin/prepare"]; $0.restart = .never }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .preStart]),
            (1, .preStartSpawned(pid: 40), .starting, []),
            (2, .preStartExited(.exited(4)), .failed,
             [.killAll, .stateChanged(from: .starting, to: .failed),
              .gaveUp(reason: "pre-start exited with status 4; restart = \"never\"")]),
        ], config: cfg)
        XCTAssertEqual(m.lastExitReason, .preStart)
        XCTAssertEqual(m.lastExit, .exited(4))
    }

    func testAStopWhileThePreStartRunsSignalsItAndIsNoFailure() {
        let cfg = config { $0.preStart = ["/bin/prepare"] }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .preStart]),
            (1, .preStartSpawned(pid: 40), .starting, []),
            (2, .stopRequested, .stopping,
             [.stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal), .armTimer(.stopTimeout, deadline: 2 + cfg.stopTimeout)]),
            (2 + cfg.stopTimeout, .timerFired(.stopTimeout), .stopping, [.killAll]),
            (3 + cfg.stopTimeout, .preStartExited(.killed(9)), .stopped,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .stopped)]),
        ], config: cfg)
        XCTAssertNil(m.lastExitReason)
        XCTAssertFalse(m.inPreStart)
        XCTAssertNil(m.preStartPid)
    }

    func testARestartWhileThePreStartRunsRunsItAgain() {
        let cfg = config { $0.preStart = ["/bin/prepare"] }
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .preStart]),
            (1, .preStartSpawned(pid: 40), .starting, []),
            (2, .restartRequested, .stopping,
             [.stateChanged(from: .starting, to: .stopping), .signal(cfg.stopSignal), .armTimer(.stopTimeout, deadline: 2 + cfg.stopTimeout)]),
            (3, .preStartExited(.killed(15)), .starting,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .starting), .preStart]),
        ], config: cfg)
    }

    func testAOneshotWithAPreStart() {
        let cfg = oneshot { $0.preStart = ["/bin/prepare"] }
        _ = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .preStart]),
            (1, .preStartSpawned(pid: 40), .starting, []),
            (2, .preStartExited(.exited(0)), .starting, [.killAll, .spawn]),
            (3, .spawned(pid: 41), .starting, []),
            (4, .processExited(.exited(0)), .exited, [.killAll, .stateChanged(from: .starting, to: .exited)]),
        ], config: cfg)
    }
}

final class TaskStackTests: XCTestCase {
    func migrate(_ restart: RestartPolicy = .never, _ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
        service("migrate", restart: restart) { c in
            c.type = .oneshot
            c.startLimit = StartLimit(count: 2, interval: 10 * .perSecond)
            edit(&c)
        }
    }

    func testDependentsWaitForTheOneshotsSuccess() throws {
        var d = StackDriver([migrate(), service("web", instances: 2, after: ["migrate"])])
        d.boot()
        XCTAssertEqual(d.spawned(in: d.all), ["migrate.0"])
        XCTAssertEqual(d.state("migrate"), .starting, "a running task is starting")
        XCTAssertEqual(d.state("web"), .starting)
        XCTAssertFalse(d.stack.isSettled, "READY=1 waits for the task")
        d.exit("migrate", 0, .exited(0))
        XCTAssertEqual(d.state("migrate"), .exited)
        XCTAssertEqual(d.spawned(), ["web.0", "web.1"])
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertTrue(d.stack.isSettled)
        XCTAssertEqual(d.stateChanges("migrate"), [.starting, .exited])
    }

    func testAFailedOneshotFailsItsDependentsAndAStartAfterAFixBringsBothUp() throws {
        var d = StackDriver([migrate(), service("web", after: ["migrate"])])
        d.boot()
        d.exit("migrate", 0, .exited(1))
        XCTAssertEqual(d.state("migrate"), .failed)
        XCTAssertEqual(d.state("web"), .failed)
        XCTAssertEqual(d.entry("web").machine.failureReason, "dependency migrate failed")
        XCTAssertEqual(d.spawned(in: d.all).filter { $0.hasPrefix("web") }, [])
        XCTAssertTrue(d.stack.isSettled)
        try d.start("migrate")
        XCTAssertEqual(d.state("web"), .starting)
        XCTAssertEqual(d.spawned(in: d.last), ["migrate.0"])
        d.exit("migrate", 0, .exited(0))
        XCTAssertEqual(d.state("migrate"), .exited)
        XCTAssertEqual(d.state("web"), .running)
    }

    func testDependentsWaitOutTheRetriesOfAOneshotUnderOnFailure() throws {
        var d = StackDriver([migrate(.onFailure), service("web", after: ["migrate"])])
        d.boot()
        d.exit("migrate", 0, .exited(1))
        XCTAssertEqual(d.state("migrate"), .backoff)
        XCTAssertEqual(d.state("web"), .starting, "still waiting: the task retries")
        d.advance(by: 200 * .perMillisecond)
        XCTAssertEqual(d.state("migrate"), .starting)
        d.exit("migrate", 0, .exited(1))
        XCTAssertEqual(d.state("migrate"), .failed, "start limit of 2")
        XCTAssertEqual(d.state("web"), .failed)
        XCTAssertEqual(d.entry("web").machine.failureReason, "dependency migrate failed")
    }

    func testARestartOfARunningOneshotWithSeveralInstancesIsNotRolling() throws {
        var d = StackDriver([migrate { $0.instances = 2 }, service("web", after: ["migrate"])])
        d.boot()
        try d.restart("migrate")
        XCTAssertNil(d.entry("migrate").rolling, "a task never becomes ready: nothing to roll on")
        XCTAssertEqual(d.signalled(), ["migrate.0", "migrate.1"])
        d.stopAllStopping()
        XCTAssertEqual(d.alive("migrate"), 2)
        d.exit("migrate", 0, .exited(0))
        d.exit("migrate", 1, .exited(0))
        XCTAssertEqual(d.state("migrate"), .exited)
        XCTAssertEqual(d.state("web"), .running)
    }

    func testStartingAnExitedOneshotRunsItAgain() throws {
        var d = StackDriver([migrate()])
        d.boot()
        d.exit("migrate", 0, .exited(0))
        try d.start("migrate")
        XCTAssertEqual(d.spawned(in: d.last), ["migrate.0"])
        XCTAssertEqual(d.state("migrate"), .starting)
    }

    func testServiceStateIsStartingWhileThePreStartRunsAndFailedAfterIt() throws {
        var d = StackDriver([service("web", restart: .never) { $0.preStart = ["/bin/prepare"] },
                             service("app", after: ["web"])])
        d.boot()
        XCTAssertEqual(d.state("web"), .starting)
        XCTAssertEqual(d.state("app"), .starting)
        d.preStartExit("web", 0, .exited(2))
        XCTAssertEqual(d.state("web"), .failed)
        XCTAssertEqual(d.entry("web").machine.lastExitReason, .preStart)
        XCTAssertEqual(d.entry("web").machine.lastExit, .exited(2))
        XCTAssertEqual(d.state("app"), .failed)
        try d.start("web")
        d.preStartExit("web", 0)
        XCTAssertEqual(d.spawned(in: d.last), ["web.0", "app.0"], "the spawn after its pre-start, then what waited")
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertEqual(d.state("app"), .running)
        XCTAssertEqual(d.stateChanges("web"), [.starting, .failed, .starting, .running])
    }

    func testAStopWhileThePreStartRunsStopsIt() throws {
        var d = StackDriver([service("web") { $0.preStart = ["/bin/prepare"] }])
        d.boot()
        try d.stop("web")
        XCTAssertEqual(d.signalled(), ["web.0"])
        XCTAssertEqual(d.state("web"), .stopping)
        d.preStartExit("web", 0, .killed(15))
        XCTAssertEqual(d.state("web"), .stopped)
        XCTAssertEqual(d.spawned(in: d.all), [])
    }
}

/// `type` and `pre-start` in a config file: what they decode to, and each problem at its place.
extension ConfigValidationTests {
    func testOneshotAndPreStartKeys() throws {
        let c = try XCTUnwrap(config("""
            [services.migrate]
            command = ["./migrate"]
            type = "oneshot"

            [services.retry]
            command = ["./task"]
            restart = "on-failure"
            type = "oneshot"

            [services.web]
            command = ["./web"]
            pre-start = ["./check", "--port", "{instance + 8000}"]
            after = ["migrate"]
            """))
        XCTAssertEqual(c.service(named: "migrate")?.type, .oneshot)
        XCTAssertEqual(c.service(named: "migrate")?.restart, .never, "a oneshot's restart defaults to never")
        XCTAssertEqual(c.service(named: "retry")?.restart, .onFailure)
        XCTAssertEqual(c.service(named: "web")?.type, .simple)
        XCTAssertEqual(c.service(named: "web")?.restart, .always)
        XCTAssertEqual(c.service(named: "web")?.preStart, ["./check", "--port", "{instance + 8000}"])
        XCTAssertEqual(c.service(named: "web")?.forInstance(2).preStart, ["./check", "--port", "8002"])
    }

    func testOneshotAndPreStartProblems() {
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            restart = "always"
            type = "oneshot"
            """), ["c.toml:3:11: restart = \"always\" does not fit type = \"oneshot\" (a task that runs again and again is a service): use \"on-failure\" or \"never\""])
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            type = "oneshot"
            ready = "notify"
            """), ["c.toml:4:1: ready does not apply to type = \"oneshot\": a oneshot is done when its process exits 0, and what waits for it waits for that"])
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            type = "task"
            """), ["c.toml:3:8: type must be \"simple\" or \"oneshot\", not \"task\""])
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            pre-start = "./check"
            """), ["c.toml:3:13: pre-start must be an array of strings (an argv), not a string; for a shell line write [\"/bin/sh\", \"-c\", \"…\"]"])
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            pre-start = []
            """), ["c.toml:3:13: pre-start must not be empty (leave it out for none)"])
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            pre-start = ["./check", "{instance + x}"]
            """).count, 1, "a bad placeholder in pre-start is caught")
        XCTAssertEqual(errors("""
            [services.a]
            command = ["x"]
            pre-stat = ["./check"]
            """), ["c.toml:3:1: unknown key \"pre-stat\" in [services.a]; did you mean \"pre-start\"?"])
    }
}

/// The rows a oneshot and a pre-start go through, on real services.
extension ServiceStateTableTests {
    func testOneshotAndPreStartRowsOnRealServices() throws {
        var d = StackDriver([service("task", restart: .onFailure) { $0.type = .oneshot },
                             service("pre", instances: 2) { $0.preStart = ["/bin/prepare"] }])
        d.boot()
        XCTAssertEqual(d.state("task"), .starting, "row 6: a oneshot running")
        XCTAssertEqual(d.state("pre"), .starting, "row 6: pre-starts running")
        d.preStartExit("pre", 0)
        XCTAssertEqual(d.state("pre"), .running, "row 5: one ready, the other still in its pre-start")
        d.exit("task", 0, .exited(1))
        XCTAssertEqual(d.state("task"), .backoff, "row 7: on-failure waits out its delay")
        d.advance(by: 1 * .perSecond)
        d.exit("task", 0, .exited(0))
        XCTAssertEqual(d.state("task"), .exited, "row 8: done for good")
        try d.stop("task")
        XCTAssertEqual(d.state("task"), .stopped, "row 3")
    }
}
