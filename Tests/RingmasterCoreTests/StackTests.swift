import XCTest
@testable import RingmasterCore

/// The Stack's decisions as tables of command/event → actions/state, with a fake runtime.
final class StackTests: XCTestCase {
    func testBootStartsEachServiceOnceItsDependenciesAreSettled() {
        var d = StackDriver([service("web", instances: 2, after: ["db"]), service("db", ready: .notify),
                             service("cache")])
        d.boot()
        XCTAssertEqual(d.spawned(in: d.all), ["db.0", "cache.0"])
        XCTAssertTrue(d.entry("web").machine.awaitingDependencies)
        XCTAssertFalse(d.stack.isSettled)
        d.ready("db", 0)
        XCTAssertEqual(d.spawned(), ["web.0", "web.1"])
        XCTAssertTrue(d.stack.isSettled)
    }

    func testStopGoesHighestInstanceFirstAndDoesNotWaitForDependents() throws {
        var d = StackDriver([service("db"), service("web", instances: 3, after: ["db"])])
        d.boot()
        try d.stop("web")
        XCTAssertEqual(d.signalled(), ["web.2", "web.1", "web.0"])
        try d.stop("db")
        XCTAssertEqual(d.signalled(), ["db.0"], "a single stop does not cascade or wait")
    }

    func testAfterAFailedDependencyTheDependentFailsWithTheReasonAndStartTriesAgain() throws {
        let limit = StartLimit(count: 1, interval: 10 * .perSecond)
        var d = StackDriver([service("migrate", ready: .notify, restart: .onFailure) { $0.startLimit = limit },
                             service("web", instances: 2, after: ["migrate"])])
        d.boot()
        d.exit("migrate", 0, .exited(1))
        XCTAssertEqual(d.state("migrate"), .failed)
        XCTAssertEqual(d.state("web"), .failed)
        XCTAssertEqual(d.entry("web").machine.failureReason, "dependency migrate failed")
        XCTAssertEqual(d.spawned(in: d.all).filter { $0.hasPrefix("web") }, [], "a dependent never starts")
        XCTAssertTrue(d.stack.isSettled, "READY=1 is not withheld: every service settled or failed")

        // `ringctl start web` tries the chain again: migrate first, then web.
        try d.start("web")
        XCTAssertEqual(d.spawned(in: d.last), ["migrate.0"])
        XCTAssertEqual(d.state("web"), .starting)
        d.exit("migrate", 0, .exited(0))
        XCTAssertEqual(d.state("migrate"), .exited)
        XCTAssertEqual(d.spawned(), ["web.0", "web.1"], "an exited dependency is settled")
        XCTAssertEqual(d.state("web"), .running)

        // `ringctl start migrate` after a fix brings both up.
        var e = StackDriver([service("migrate", ready: .notify, restart: .never), service("web", after: ["migrate"])])
        e.boot()
        e.exit("migrate", 0, .exited(2))
        XCTAssertEqual(e.state("web"), .failed)
        try e.start("migrate")
        XCTAssertEqual(e.state("web"), .starting, "no longer failed: its dependency starts again")
        e.exit("migrate", 0, .exited(0))
        XCTAssertEqual(e.state("web"), .running)
    }

    /// issue 9: instances = 2, on-failure, instance 0 exits 0: `running`, settled, dependents start.
    func testACleanExitUnderOnFailureLeavesThePairRunningAndSettled() {
        var d = StackDriver([service("pair", instances: 2, restart: .onFailure), service("app", after: ["pair"])])
        d.boot()
        XCTAssertEqual(d.spawned(in: d.all), ["pair.0", "pair.1", "app.0"])
        d.exit("pair", 0, .exited(0))
        XCTAssertEqual(d.state("pair"), .running)
        XCTAssertEqual(d.entry("pair").machine.instances[0].state, .exited)
        XCTAssertTrue(d.entry("pair").machine.isSettled)
        XCTAssertEqual(d.stateChanges("pair"), [.starting, .running], "never back to starting")

        // Before its dependents started: they still start.
        var e = StackDriver([service("pair", instances: 2, ready: .notify, restart: .onFailure),
                             service("app", after: ["pair"])])
        e.boot()
        e.ready("pair", 1)
        e.exit("pair", 0, .exited(0))
        XCTAssertEqual(e.spawned(), ["app.0"])
        XCTAssertTrue(e.stack.isSettled)
    }

    /// issue 9: `ringctl scale web 2` on 3 serving instances never leaves `running`.
    func testScaleDownWhileServingStaysRunning() throws {
        var d = StackDriver([service("web", instances: 3)])
        d.boot()
        try d.scale("web", 2)
        XCTAssertEqual(d.signalled(), ["web.2"])
        XCTAssertEqual(d.state("web"), .running)
        d.stopAllStopping()
        XCTAssertEqual(d.entry("web").machine.instances.count, 2)
        XCTAssertEqual(d.stateChanges("web"), [.starting, .running])
    }

    /// issue 9: `kill -9` of one of 3 instances is not `backoff`.
    func testOneCrashedInstanceOfThreeStaysRunning() {
        var d = StackDriver([service("web", instances: 3)])
        d.boot()
        d.exit("web", 1, .killed(9))
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertEqual(d.entry("web").machine.instances[1].state, .backoff)
        d.advance(by: 100 * .perMillisecond)
        XCTAssertEqual(d.spawned(), ["web.1"])
        XCTAssertEqual(d.stateChanges("web"), [.starting, .running])
    }

    /// issue 9: scale to 0 is allowed (as `instances = 0` in a config is).
    func testScaleToZeroAndBack() throws {
        var d = StackDriver([service("web", instances: 2)])
        d.boot()
        try d.scale("web", 0)
        d.stopAllStopping()
        XCTAssertEqual(d.entry("web").machine.instances.count, 0)
        XCTAssertEqual(d.state("web"), .stopped)
        XCTAssertTrue(d.stack.isSettled)
        try d.scale("web", 2)
        XCTAssertEqual(d.spawned(), ["web.0", "web.1"])
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertThrowsError(try d.scale("web", 10_001)) { error in
            XCTAssertEqual(error as? CommandError, .invalidArgument("instances must be between 0 and 10000, not 10001"))
        }
    }

    /// issue 9: thousands of spawns go in batches of `workPerStep`.
    func testLargeScaleUpIsDoneInBoundedBatches() throws {
        var d = StackDriver([service("w", instances: 1)], limits: StackLimits(workPerStep: 32))
        d.boot()
        try d.scale("w", 10_000)
        XCTAssertEqual(d.spawned().count, 32)
        XCTAssertTrue(d.continuationPending)
        XCTAssertEqual(d.state("w"), .running)
        var steps = 1
        while d.continuationPending {
            d.continueWork()
            XCTAssertLessThanOrEqual(d.spawned().count, 32)
            steps += 1
        }
        XCTAssertEqual(d.alive("w"), 10_000)
        XCTAssertEqual(steps, Int((9_999 + 31) / 32))
        // a scale-down meanwhile supersedes the rest
        try d.scale("w", 10)
        XCTAssertLessThanOrEqual(d.signalled().count, 32)
        d.drainBacklog()
        d.stopAllStopping()
        XCTAssertEqual(d.alive("w"), 10)
        XCTAssertEqual(d.entry("w").machine.instances.count, 10)
    }

    /// issue 9: a large scale-down sends at most `maximumStopping` stop signals ahead of the
    /// exits; each exit lets the backlog go on (no continuation spins while it waits).
    func testALargeScaleDownWaitsForExitsBeyondTheStopsInFlight() throws {
        var d = StackDriver([service("w", instances: 200)], limits: StackLimits(workPerStep: 8, maximumStopping: 20))
        d.boot()
        d.drainBacklog()
        d.readyAll("w")
        XCTAssertEqual(d.alive("w"), 200)
        try d.scale("w", 1)
        XCTAssertEqual(d.entry("w").machine.stopping, 8, "one step's budget")
        d.drainBacklog()
        XCTAssertEqual(d.entry("w").machine.stopping, 20)
        XCTAssertFalse(d.continuationPending, "nothing to do until an exit")
        XCTAssertEqual(d.state("w"), .running)
        let stopping = d.entry("w").machine.instances.indices.filter { d.entry("w").machine.instances[$0].state == .stopping }
        d.exit("w", stopping[0], .killed(15))
        XCTAssertEqual(d.entry("w").machine.stopping, 20, "one exit, one more stop")
        d.stopAllStopping()
        XCTAssertEqual(d.alive("w"), 1)
        XCTAssertEqual(d.entry("w").machine.instances.count, 1)
        XCTAssertFalse(d.stack.hasBacklog)
        XCTAssertEqual(d.state("w"), .running)
    }

    func testAScaleDownDuringABatchedStartDropsTheQueuedStarts() throws {
        var d = StackDriver([service("w", instances: 1000)], limits: StackLimits(workPerStep: 10))
        d.run(d.stack.boot(now: 0))
        XCTAssertEqual(d.alive("w"), 10)
        try d.scale("w", 5)
        d.drainBacklog()
        d.stopAllStopping()
        XCTAssertEqual(d.alive("w"), 5)
        XCTAssertEqual(d.spawned(in: d.all).count, 10, "nothing beyond the first batch was spawned")
    }

    func testInstanceCountsAreCheckedAgainstTheOpenFileLimit() throws {
        let limits = StackLimits(fileLimit: 556, filesPerInstance: 3, filesReserved: 256)
        XCTAssertEqual(limits.instanceCapacity, 100)
        var d = StackDriver([service("a", instances: 50), service("b", instances: 40)], limits: limits)
        d.boot()
        XCTAssertNoThrow(try d.scale("b", 50))
        XCTAssertThrowsError(try d.scale("b", 51)) { error in
            guard case let .invalidArgument(message)? = error as? CommandError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.hasPrefix("scaling b to 51 needs room for 101 instances, 303 descriptors, but the open-file limit (556) allows 300"), message)
        }
        XCTAssertEqual(d.entry("b").machine.wantedInstances, 50, "a refused scale changes nothing")
        XCTAssertThrowsError(try d.stack.checkCapacity(of: Config(services: [service("x", instances: 101)])))
        XCTAssertThrowsError(try d.reload(Config(services: [service("a", instances: 101)])))
        XCTAssertEqual(d.entry("a").machine.wantedInstances, 50, "a refused reload changes nothing")
        // A probe table holds one more descriptor per instance (an http probe's kept connection).
        var probed = service("p", instances: 75)
        probed.liveness = ProbeConfig(check: .exec(["true"]))
        XCTAssertNoThrow(try d.stack.checkCapacity(of: Config(services: [probed])))   // 75 × 4 = 300
        probed.instances = 76
        XCTAssertThrowsError(try d.stack.checkCapacity(of: Config(services: [probed]))) { error in
            XCTAssertTrue("\(error)".contains("76 instances, 304 descriptors"), "\(error)")
        }
    }

    func testShutdownStopsDependentsBeforeTheirDependencies() {
        var d = StackDriver([service("db"), service("app", after: ["db"]), service("web", instances: 2, after: ["app"]),
                             service("other")])
        d.boot()
        d.shutdown()
        XCTAssertEqual(Set(d.signalled()), ["web.1", "web.0", "other.0"])
        XCTAssertEqual(d.state("app"), .running, "waits for web")
        d.exit("web", 1, .killed(15))
        XCTAssertEqual(d.signalled(), [])
        d.exit("web", 0, .killed(15))
        XCTAssertEqual(d.signalled(), ["app.0"])
        d.exit("app", 0, .killed(15))
        XCTAssertEqual(d.signalled(), ["db.0"])
        XCTAssertFalse(d.shutdownComplete)
        d.exit("db", 0, .killed(15))
        d.exit("other", 0, .killed(15))
        XCTAssertTrue(d.shutdownComplete)
        XCTAssertThrowsError(try d.start("db")) { XCTAssertEqual($0 as? CommandError, .failed("ringmasterd is shutting down")) }
    }

    func testKillIsCheckedNotPerformed() throws {
        var d = StackDriver([service("web") { $0.autostart = false }])
        XCTAssertThrowsError(try d.stack.checkKill("web", signal: 15)) { XCTAssertEqual($0 as? CommandError, .failed("web has no process to signal")) }
        XCTAssertThrowsError(try d.stack.checkKill("nope", signal: 15)) { XCTAssertEqual($0 as? CommandError, .noSuchService("nope")) }
        try d.start("web")
        XCTAssertThrowsError(try d.stack.checkKill("web", signal: 0))
        XCTAssertEqual(try d.stack.checkKill("web", signal: 1), d.id("web"))
    }

    func testLastExitSurvivesAScaleDown() throws {
        var d = StackDriver([service("web", instances: 2)])
        d.boot()
        try d.scale("web", 1)
        d.exit("web", 1, .killed(15))
        XCTAssertEqual(d.entry("web").machine.instances.count, 1)
        XCTAssertEqual(d.entry("web").machine.lastExit, .killed(15))
    }

    // MARK: - rolling restart

    func testRollingRestartSurgesFirstAndNeverHasFewerReady() throws {
        var d = StackDriver([service("web", instances: 3, ready: .notify)])
        d.boot()
        d.readyAll("web")
        let old = (0..<3).map { d.pid("web", $0)! }
        try d.restart("web")
        XCTAssertEqual(d.spawned(), ["web.3"], "the extra instance first")
        XCTAssertEqual(d.signalled(), [])
        for i in 0..<3 {
            let surgeOrPrevious = i == 0 ? 3 : i - 1
            d.ready("web", surgeOrPrevious)
            XCTAssertEqual(d.signalled(), ["web.\(i)"], "one old process at a time, once covered")
            XCTAssertEqual(d.entry("web").machine.running, 3)
            d.exit("web", i, .killed(15))
            XCTAssertEqual(d.spawned(), ["web.\(i)"])
            XCTAssertEqual(d.state("web"), .running)
        }
        d.ready("web", 2)
        XCTAssertEqual(d.signalled(), ["web.3"], "the extra instance goes last")
        d.exit("web", 3, .killed(15))
        XCTAssertNil(d.entry("web").rolling)
        XCTAssertEqual(d.entry("web").machine.instances.count, 3)
        XCTAssertEqual(d.peakAlive[d.id("web")], 4)
        XCTAssertTrue((0..<3).allSatisfy { !old.contains(d.pid("web", $0)!) }, "every pid replaced")
        XCTAssertEqual(d.stateChanges("web"), [.starting, .running])
    }

    func testRollingRestartWaitsForCoverBeforeStoppingTheNext() throws {
        var d = StackDriver([service("web", instances: 2, ready: .notify)])
        d.boot()
        d.readyAll("web")
        try d.restart("web")
        d.exit("web", 1, .killed(9))   // a crash during the surge
        d.ready("web", 2)
        XCTAssertEqual(d.signalled(), [], "web.1 is down: stopping web.0 would leave fewer ready than at the start")
        d.advance(by: 100 * .perMillisecond)
        d.ready("web", 1)
        XCTAssertEqual(d.signalled(), ["web.0"])
    }

    func testRollingRestartIsAbandonedWhenTheExtraInstanceFails() throws {
        var d = StackDriver([service("web", instances: 2) { $0.startLimit = StartLimit(count: 2, interval: 10 * .perSecond) }])
        d.boot()
        let old = [d.pid("web", 0), d.pid("web", 1)]
        d.failingSpawns = ["web"]
        try d.restart("web")
        d.advance(by: 1 * .perSecond)
        XCTAssertNil(d.entry("web").rolling)
        XCTAssertEqual(d.entry("web").machine.instances.count, 2)
        XCTAssertEqual([d.pid("web", 0), d.pid("web", 1)], old, "the old processes keep serving")
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertTrue(d.all.contains { if case let .note(_, n) = $0 { return n.message.contains("rolling restart rolled back: web.2 could not be spawned") }; return false })
    }

    func testStopAbandonsARollingRestart() throws {
        var d = StackDriver([service("web", instances: 2, ready: .notify)])
        d.boot()
        d.readyAll("web")
        try d.restart("web")
        try d.stop("web")
        XCTAssertNil(d.entry("web").rolling)
        d.stopAllStopping()
        XCTAssertEqual(d.alive("web"), 0)
        XCTAssertEqual(d.entry("web").machine.instances.count, 2)
    }

    func testRestartOfOneInstanceOrAStoppedServiceIsNotRolling() throws {
        var d = StackDriver([service("one"), service("off", instances: 2) { $0.autostart = false }])
        d.boot()
        try d.restart("one")
        XCTAssertEqual(d.signalled(), ["one.0"])
        d.exit("one", 0, .killed(15))
        XCTAssertEqual(d.spawned(), ["one.0"])
        try d.restart("off")
        XCTAssertEqual(d.spawned(), ["off.0", "off.1"])
    }
}
