import XCTest
@testable import RingmasterCore

/// Canary with rollback (StackRollingRestart.swift) and jobs (StackJobs.swift): a rolling
/// restart's first new instance must become ready; if not, it goes, the old instances keep
/// serving (with the old config, for a reload), and the restart's job fails saying why.
final class StackCanaryTests: XCTestCase {
    let s = USec.perSecond

    func web(_ instances: Int = 3, _ tweak: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
        service("web", instances: instances, ready: .notify) { c in
            c.readyTimeout = 5 * .perSecond
            tweak(&c)
        }
    }

    func up(_ services: [ServiceConfig]) -> StackDriver {
        var d = StackDriver(services)
        d.boot()
        for e in services { d.readyAll(e.name) }
        return d
    }

    func pids(_ d: StackDriver, _ n: Int = 3) -> [Int32?] { (0..<n).map { d.pid("web", $0) } }

    func rolledBack(_ d: StackDriver) -> [String] {
        d.all.compactMap { if case let .rolledBack(_, why, _) = $0 { return why }; return nil }
    }

    // MARK: - canary

    func testACanaryThatExitsIsRolledBackAndTheOldInstancesServeOn() throws {
        var d = up([web()])
        let old = pids(d)
        d.run(try d.stack.restart("web", now: d.now, job: JobID(7)))
        XCTAssertEqual(d.spawned(), ["web.3"], "the canary first")
        d.exit("web", 3, .exited(1))
        XCTAssertEqual(pids(d), old, "no old process was touched")
        XCTAssertNil(d.entry("web").rolling)
        XCTAssertEqual(d.entry("web").machine.instances.count, 3, "the canary is gone")
        XCTAssertEqual(d.alive("web"), 3)
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertEqual(rolledBack(d), ["web.3 exited with status 1 before it was ready"])
        XCTAssertEqual(d.entry("web").lastRollback, "web.3 exited with status 1 before it was ready")
        XCTAssertEqual(d.jobResults[JobID(7)], .failed("web: rolled back: web.3 exited with status 1 before it was ready"))
        XCTAssertFalse(d.timers.keys.contains { $0.instance == 3 }, "no restart of the canary is pending")
    }

    func testACanaryNotReadyWithinReadyTimeoutIsRolledBack() throws {
        var d = up([web()])
        let old = pids(d)
        d.run(try d.stack.restart("web", now: d.now, job: JobID(1)))
        d.advance(by: 4 * s)
        XCTAssertNil(d.jobResults[JobID(1)], "still within ready-timeout")
        d.advance(by: 1 * s)
        XCTAssertEqual(d.signalled(), ["web.3"], "the canary is told to stop at ready-timeout")
        XCTAssertEqual(d.jobResults[JobID(1)], .failed("web: rolled back: web.3 was not ready within 5s (ready-timeout)"))
        d.stopAllStopping()
        XCTAssertEqual(pids(d), old)
        XCTAssertEqual(d.entry("web").machine.instances.count, 3)
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertEqual(d.entry("web").machine.running, 3)
    }

    func testAGoodCanaryGoesOnAndTheJobEndsOnceEveryInstanceIsReplaced() throws {
        var d = up([web()])
        let old = pids(d)
        d.run(try d.stack.restart("web", now: d.now, job: JobID(2)))
        for i in 0..<3 {
            d.ready("web", i == 0 ? 3 : i - 1)
            XCTAssertNil(d.jobResults[JobID(2)])
            d.exit("web", i, .killed(15))
        }
        d.ready("web", 2)
        XCTAssertNil(d.jobResults[JobID(2)], "the extra instance is still there")
        d.exit("web", 3, .killed(15))
        XCTAssertEqual(d.jobResults[JobID(2)], .done)
        XCTAssertTrue((0..<3).allSatisfy { !old.contains(d.pid("web", $0)) })
        XCTAssertNil(d.entry("web").lastRollback)
    }

    func testAReplacedInstanceThatGivesUpAbandonsTheRestartAndFailsTheJob() throws {
        var d = up([web(2) { $0.startLimit = StartLimit(count: 1, interval: 10 * .perSecond) }])
        d.run(try d.stack.restart("web", now: d.now, job: JobID(3)))
        d.ready("web", 2)                    // the canary is good
        d.exit("web", 0, .killed(15))        // web.0 replaced: its new process…
        d.exit("web", 0, .exited(3))         // …fails at once; start limit 1: it gives up
        guard case let .failed(why)? = d.jobResults[JobID(3)] else { return XCTFail("\(String(describing: d.jobResults[JobID(3)]))") }
        XCTAssertTrue(why.contains("rolling restart abandoned: web.0 failed"), why)
    }

    func testAReloadWhoseCanaryFailsKeepsTheOldConfigAndAppliesTheRest() throws {
        let api = service("api")
        var d = up([web(), api])
        let old = pids(d)
        var new = Config(services: [web { $0.command = ["/bin/web-v2"] }, service("api") { $0.command = ["/bin/api-v2"] },
                                    service("extra")])
        let (_, actions) = try d.stack.reload(to: new, changedSockets: [], now: d.now, job: JobID(4))
        d.run(actions)
        d.drainBacklog()
        XCTAssertEqual(d.entry("web").machine.config.command, ["/bin/web-v2"], "the canary runs the new config")
        d.exit("web", 3, .exited(2))
        XCTAssertEqual(pids(d), old)
        XCTAssertEqual(d.entry("web").machine.config.command, ["/bin/web"], "web keeps its old config")
        XCTAssertEqual(d.entry("web").configured.command, ["/bin/web"])
        XCTAssertEqual(d.stack.config.service(named: "web")?.command, ["/bin/web"])
        XCTAssertEqual(d.entry("api").machine.config.command, ["/bin/api-v2"], "the rest of the reload applies")
        XCTAssertNotNil(d.stack.entry(named: "extra"))
        XCTAssertEqual(d.all.compactMap { if case let .rolledBack(_, _, restored) = $0 { return restored }; return nil }, [true])
        d.exit("api", 0, .killed(15))        // api's restart completes
        XCTAssertEqual(d.jobResults[JobID(4)], .failed("web: rolled back: web.3 exited with status 2 before it was ready"))
        // The same file again is a change of web again: the canary is tried again.
        new.files = []
        let plan = d.stack.plan(for: new, changedSockets: [])
        XCTAssertEqual(plan.verdict(of: "web"), .changed)
        XCTAssertEqual(plan.verdict(of: "api"), .unchanged)
    }

    func testAReloadJobEndsOnceEveryChangeIsDone() throws {
        var d = up([web(2), service("gone"), service("worker", instances: 1)])
        let gone = d.id("gone")
        var new = Config(services: [web(2) { $0.command = ["/bin/web-v2"] }, service("worker", instances: 3), service("fresh")])
        new.files = []
        let (_, actions) = try d.stack.reload(to: new, changedSockets: [], now: d.now, job: JobID(5))
        d.run(actions)
        d.drainBacklog()
        d.exit(gone, 0, .killed(15))
        XCTAssertNil(d.jobResults[JobID(5)])
        d.ready("web", 2)
        d.exit("web", 0, .killed(15)); d.ready("web", 0)
        d.exit("web", 1, .killed(15)); d.ready("web", 1)
        XCTAssertNil(d.jobResults[JobID(5)], "the extra instance is not gone yet")
        d.exit("web", 2, .killed(15))
        XCTAssertEqual(d.jobResults[JobID(5)], .done)
    }

    // MARK: - jobs of the other commands

    func testStartStopAndScaleJobs() throws {
        var d = StackDriver([web(2) { $0.autostart = false }])
        d.boot()
        d.run(try d.stack.start("web", now: d.now, job: JobID(1)))
        d.drainBacklog()
        d.ready("web", 0)
        XCTAssertNil(d.jobResults[JobID(1)], "one of two ready")
        d.ready("web", 1)
        XCTAssertEqual(d.jobResults[JobID(1)], .done)

        d.run(try d.stack.start("web", now: d.now, job: JobID(2)))
        XCTAssertEqual(d.jobResults[JobID(2)], .done, "up already: done at once")

        d.run(try d.stack.scale("web", to: 3, now: d.now, job: JobID(3)))
        d.drainBacklog()
        XCTAssertNil(d.jobResults[JobID(3)])
        d.ready("web", 2)
        XCTAssertEqual(d.jobResults[JobID(3)], .done)

        d.run(try d.stack.scale("web", to: 1, now: d.now, job: JobID(4)))
        d.drainBacklog()
        d.exit("web", 2, .killed(15))
        XCTAssertNil(d.jobResults[JobID(4)])
        d.exit("web", 1, .killed(15))
        XCTAssertEqual(d.jobResults[JobID(4)], .done)

        d.run(try d.stack.stop("web", now: d.now, job: JobID(5)))
        d.drainBacklog()
        XCTAssertNil(d.jobResults[JobID(5)])
        d.stopAllStopping()
        XCTAssertEqual(d.jobResults[JobID(5)], .done)
    }

    func testAStartThatHitsTheStartLimitOrADependencyFailureFails() throws {
        var d = StackDriver([service("db", ready: .notify, restart: .never),
                             service("app", after: ["db"]) { $0.autostart = false }])
        d.boot()
        d.run(try d.stack.start("app", now: d.now, job: JobID(1)))
        d.drainBacklog()
        d.exit("db", 0, .exited(1))
        XCTAssertEqual(d.jobResults[JobID(1)], .failed("app: dependency db failed"))
    }

    func testAnotherCommandFailsTheJobItSupersedes() throws {
        var d = up([web()])
        d.run(try d.stack.restart("web", now: d.now, job: JobID(1)))
        d.run(try d.stack.restart("web", now: d.now, job: JobID(2)))   // joins the restart under way
        d.run(try d.stack.stop("web", now: d.now, job: JobID(3)))
        XCTAssertEqual(d.jobResults[JobID(1)], .failed("web was stopped meanwhile"))
        XCTAssertEqual(d.jobResults[JobID(2)], .failed("web was stopped meanwhile"))
        d.drainBacklog()
        d.stopAllStopping()
        XCTAssertEqual(d.jobResults[JobID(3)], .done)
    }

    /// The stale starts a scale-down leaves in the backlog (behind another service's batch)
    /// are dropped in a later step that touches nothing else of the service: its job still
    /// sees the queue empty and ends.
    func testAJobEndsWhenOnlyStaleWorkWasLeftInTheBacklog() throws {
        var d = StackDriver([service("big", instances: 12) { $0.autostart = false },
                             service("web", instances: 2) { $0.autostart = false }], limits: StackLimits(workPerStep: 4))
        d.autoDrain = false
        d.boot()
        try d.start("big")                                       // 4 spawned, 8 queued
        d.run(try d.stack.start("web", now: d.now, job: JobID(1)))
        d.run(try d.stack.scale("web", to: 0, now: d.now, job: JobID(2)))
        XCTAssertEqual(d.stack.queuedWork(of: d.id("web")), 2, "web's starts wait behind big's batch, stale now")
        XCTAssertNil(d.jobResults[JobID(2)])
        d.drainBacklog()
        XCTAssertEqual(d.stack.queuedWork(of: d.id("web")), 0)
        XCTAssertEqual(d.jobResults[JobID(2)], .done)
        XCTAssertEqual(d.jobResults[JobID(1)], .done, "a start of a service wanted at 0 instances is done once settled")
    }

    func testShutdownFailsWhatWaitsForAStart() throws {
        var d = StackDriver([web(1) { $0.autostart = false }])
        d.boot()
        d.run(try d.stack.start("web", now: d.now, job: JobID(9)))
        d.drainBacklog()
        d.shutdown()
        XCTAssertEqual(d.jobResults[JobID(9)], .failed("ringmasterd is shutting down"))
    }
}
