import XCTest
@testable import RingmasterCore

/// Every row of SPEC's service-state table (docs/architecture.md), first as facts, then as a
/// real service in that situation.
final class ServiceStateTableTests: XCTestCase {
    func testEveryRowOfTheTable() {
        typealias F = ServiceFacts
        let rows: [(String, F, ServiceState)] = [
            ("an instance failed", F(wanted: true, anyFailed: true, anyReady: true, anyAlive: true), .failed),
            ("failed beats not wanted", F(wanted: false, anyFailed: true), .failed),
            ("dependency failed", F(wanted: true, dependencyFailed: true), .failed),
            ("not wanted, a process left", F(wanted: false, anyAlive: true, anyStopping: true), .stopping),
            ("not wanted, no process", F(wanted: false), .stopped),
            ("a stale dependency failure of a stopped service", F(wanted: false, dependencyFailed: true), .stopped),
            ("wanted, none ready, one stopping (non-rolling restart)", F(wanted: true, anyAlive: true, anyStopping: true), .stopping),
            ("wanted, one ready while another stops (scale-down)", F(wanted: true, anyReady: true, anyAlive: true, anyStopping: true), .running),
            ("wanted, one ready while another backs off", F(wanted: true, anyReady: true, anyAlive: true, anyBackoff: true), .running),
            ("wanted, one ready, one exited", F(wanted: true, anyReady: true, anyAlive: true, instances: 2), .running),
            ("wanted, spawning", F(wanted: true, anyAlive: true), .starting),
            ("wanted, no process, restart delay", F(wanted: true, anyBackoff: true), .backoff),
            ("wanted, every instance exited", F(wanted: true, instances: 2, allExited: true), .exited),
            ("wanted, scaled to 0", F(wanted: true, instances: 0), .stopped),
            ("wanted, waiting for dependencies", F(wanted: true, instances: 3), .starting),
        ]
        for (what, facts, expected) in rows {
            XCTAssertEqual(ServiceStateTable.state(of: facts), expected, what)
        }
    }

    func testRowsOnRealServices() throws {
        // starting: spawned, waiting for READY=1
        var d = StackDriver([service("db", ready: .notify), service("web", instances: 2, after: ["db"])])
        d.boot()
        XCTAssertEqual(d.state("db"), .starting)
        XCTAssertEqual(d.state("web"), .starting, "waiting for its dependency is starting")
        d.ready("db", 0)
        XCTAssertEqual(d.state("db"), .running)
        XCTAssertEqual(d.state("web"), .running)

        // backoff: no process, waiting out the delay
        d.exit("db", 0, .killed(9))
        XCTAssertEqual(d.state("db"), .backoff)
        // running while partly serving: one of two instances restarting
        d.exit("web", 1, .killed(9))
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertEqual(d.entry("web").machine.running, 1)

        // stopping / stopped
        try d.stop("web")
        XCTAssertEqual(d.state("web"), .stopping)
        d.stopAllStopping()
        XCTAssertEqual(d.state("web"), .stopped)

        // exited: every instance ended for good
        var e = StackDriver([service("task", instances: 2, restart: .onFailure)])
        e.boot()
        e.exit("task", 0, .exited(0))
        XCTAssertEqual(e.state("task"), .running, "one still serves")
        e.exit("task", 1, .exited(0))
        XCTAssertEqual(e.state("task"), .exited)

        // failed: start limit
        var f = StackDriver([service("bad") { $0.startLimit = StartLimit(count: 1, interval: 10 * .perSecond) }])
        f.boot()
        f.exit("bad", 0, .exited(1))
        XCTAssertEqual(f.state("bad"), .failed)
        XCTAssertNotNil(f.entry("bad").machine.failureReason)
    }
}
