import XCTest
@testable import RingmasterCore

/// The reload diff as a table: old and new config (and moved sockets) → each service's verdict.
final class ReloadPlanTests: XCTestCase {
    func testVerdicts() {
        let old = [service("keep"), service("cmd"), service("env"), service("count", instances: 2),
                   service("gone"), service("sock") { $0.sockets = ["http"] }, service("delay"),
                   service("flipOn") { $0.autostart = false }, service("flipOnWanted") { $0.autostart = false },
                   service("flipOff")]
        let new = Config(services: [
            service("keep"),
            service("cmd") { $0.command = ["/bin/other"] },
            service("env") { $0.environment = [EnvironmentVariable("A", "1")] },
            service("count", instances: 5),
            service("sock") { $0.sockets = ["http"] },
            service("delay") { $0.restartDelay = 5 * .perSecond },
            service("flipOn"),
            service("flipOnWanted"),
            service("flipOff") { $0.autostart = false },
            service("new"),
        ])
        let plan = ReloadPlan(old: old, wanted: ["keep", "cmd", "flipOnWanted", "flipOff"], new: new, changedSockets: ["http"])
        let rows: [(String, ReloadPlan.Verdict)] = [
            ("keep", .unchanged), ("cmd", .changed), ("env", .changed), ("count", .scaled),
            ("sock", .changed), ("delay", .changed), ("flipOn", .unchanged), ("flipOnWanted", .unchanged),
            ("flipOff", .unchanged), ("new", .added), ("gone", .removed),
        ]
        for (name, verdict) in rows { XCTAssertEqual(plan.verdict(of: name), verdict, name) }
        XCTAssertEqual(plan.startsNow, ["flipOn"], "autostart turned on starts a service not already wanted")
        XCTAssertEqual(plan.description, "added new; removed gone; restarted cmd, env, sock, delay; scaled count; started flipOn")
        XCTAssertEqual(ReloadPlan(old: old, wanted: [], new: Config(services: old), changedSockets: []).description,
                       "nothing changed")
    }

    func testStackCarriesOutThePlanAndTouchesNothingUnchanged() throws {
        var d = StackDriver([service("keep", instances: 2), service("cmd", instances: 2, ready: .notify),
                             service("count"), service("gone")])
        d.boot()
        d.readyAll("cmd")
        let keepPids = [d.pid("keep", 0), d.pid("keep", 1)]
        let new = Config(services: [service("keep", instances: 2),
                                    service("cmd", instances: 2, ready: .notify) { $0.command = ["/bin/v2"] },
                                    service("count", instances: 3), service("added", after: ["count"])])
        let plan = try d.reload(new)
        XCTAssertEqual(plan.description, "added added; removed gone; restarted cmd; scaled count")
        let keep = d.id("keep")
        XCTAssertFalse(d.last.contains { if case let .instance(id, _, _) = $0 { return id == keep }; return false },
                       "no action for an unchanged service")
        XCTAssertEqual([d.pid("keep", 0), d.pid("keep", 1)], keepPids)
        XCTAssertEqual(Set(d.spawned()), ["cmd.2", "count.1", "count.2", "added.0"], "cmd rolls (surge first); count scales")
        XCTAssertEqual(d.signalled(), ["gone.0"])
        XCTAssertEqual(d.entry("cmd").machine.config.command, ["/bin/v2"])
        XCTAssertEqual(d.stack.services.map(\.name), ["keep", "cmd", "count", "added"])
        XCTAssertEqual(d.stack.entries.filter(\.retiring).map(\.name), ["gone"])
        d.stopAllStopping()
        XCTAssertTrue(d.last.contains { if case let .serviceRemoved(e) = $0 { return e.name == "gone" }; return false })
        XCTAssertNil(d.stack.entries.first { $0.retiring })
    }

    func testARemovedServiceStillStoppingAndOneOfTheSameNameAddedAgain() throws {
        var d = StackDriver([service("web") { $0.stopTimeout = 10 * .perSecond }])
        d.boot()
        let oldID = d.id("web")
        try d.reload(Config(services: []))
        XCTAssertEqual(d.signalled(), ["web.0"])
        try d.reload(Config(services: [service("web") { $0.command = ["/bin/v2"] }]))
        let newID = d.id("web")
        XCTAssertNotEqual(oldID, newID, "a new entry beside the one still stopping")
        XCTAssertEqual(d.stack.entries.map(\.name), ["web", "web"])
        XCTAssertNotNil(d.pids[.init(id: newID, instance: 0)], "the new one started")
        XCTAssertNotNil(d.pids[.init(id: oldID, instance: 0)], "the old one is still stopping")
        d.exit(oldID, 0, .killed(15))
        XCTAssertEqual(d.stack.entries.map(\.id), [newID])
        XCTAssertEqual(d.state("web"), .running)
    }

    func testAutostartFlips() throws {
        var d = StackDriver([service("a") { $0.autostart = false }, service("b")])
        d.boot()
        XCTAssertEqual(d.spawned(in: d.all), ["b.0"])
        try d.reload(Config(services: [service("a"), service("b") { $0.autostart = false }]))
        XCTAssertEqual(d.spawned(), ["a.0"], "autostart turned on: it starts")
        XCTAssertEqual(d.signalled(), [], "autostart turned off: a running service is left running")
        XCTAssertEqual(d.state("b"), .running)
    }

    func testAChangedServiceThatIsNotUpGetsAFreshStart() throws {
        var d = StackDriver([service("bad", restart: .never)])
        d.boot()
        d.exit("bad", 0, .exited(1))
        XCTAssertEqual(d.state("bad"), .failed)
        try d.reload(Config(services: [service("bad", restart: .never) { $0.command = ["/bin/fixed"] }]))
        XCTAssertEqual(d.spawned(), ["bad.0"])
        XCTAssertEqual(d.state("bad"), .running)
    }

    func testAReloadDuringARollingRestartOfAnotherServiceLeavesItGoing() throws {
        var d = StackDriver([service("web", instances: 2, ready: .notify), service("other")])
        d.boot()
        d.readyAll("web")
        try d.restart("web")
        try d.reload(Config(services: [service("web", instances: 2, ready: .notify), service("other") { $0.command = ["/bin/x"] }]))
        XCTAssertNotNil(d.entry("web").rolling, "web did not change: its restart goes on")
        try d.reload(Config(services: [service("web", instances: 3, ready: .notify), service("other") { $0.command = ["/bin/x"] }]))
        XCTAssertNil(d.entry("web").rolling, "a scale by reload sets the count: the restart is abandoned")
        d.stopAllStopping()
        XCTAssertEqual(d.entry("web").machine.instances.count, 3)
    }
}

extension ReloadPlanTests {
    /// A scale command's count lasts until a reload changes that service's config (SPEC).
    func testAScaledServiceKeepsItsCountUntilItsConfigChanges() throws {
        var d = StackDriver([service("web", instances: 2), service("other")])
        d.boot()
        try d.scale("web", 3)
        let plan = try d.reload(Config(services: [service("web", instances: 2), service("other") { $0.command = ["/bin/x"] }]))
        XCTAssertEqual(plan.verdict(of: "web"), .unchanged)
        XCTAssertEqual(d.entry("web").machine.wantedInstances, 3, "the file's count did not change: the command's stays")
        XCTAssertEqual(d.signalled(), ["other.0"])
        try d.reload(Config(services: [service("web", instances: 2) { $0.command = ["/bin/v2"] }, service("other") { $0.command = ["/bin/x"] }]))
        XCTAssertEqual(d.entry("web").instancesWanted, 2, "a changed service takes the file's count again")
        try d.reload(Config(services: [service("web", instances: 4) { $0.command = ["/bin/v2"] }, service("other") { $0.command = ["/bin/x"] }]))
        XCTAssertEqual(d.entry("web").instancesWanted, 4, "the file's count changed: scaled")
    }
}
