// RestartService with several instances: one at a time, each old process stopped only once a
// replacement is ready, so a client hammering the shared socket sees no failed request.
import Foundation
import Glibc
import XCTest

final class DBusRollingRestartTests: DBusTestCase {
    /// The order is checked as it happens: every new process is held back before READY=1
    /// (a `ServerGate`) and, while it waits, the daemon must still have all N instances
    /// ready — so no old process was stopped before the surge instance was ready, and none
    /// before its own replacement's predecessor was. Released one at a time, then the
    /// processes' own notes ("ready", "term", one monotonic clock) are replayed: never fewer
    /// than N ready, never more than N+1 processes, every old pid stopped cleanly.
    func testRollingRestartUnderHTTPLoadFailsNoRequestAndReplacesEveryPID() throws {
        let web = service("web"), sleeper = service("sleeper")
        let port = try freePort()
        let gate = try ServerGate(directory: dir + "/gate")
        let daemon = try startBusDaemon(try webAndSleeper(web: web, sleeper: sleeper, port: port, instances: 3, gate: gate))
        let before = Set(try pids(web))
        XCTAssertEqual(before.count, 3)
        XCTAssertEqual(gate.pids("ready"), before, "every first process noted its READY=1")
        let events = try followEvents()

        // The load: sequential requests on fresh connections from another thread.
        let load = HTTPClientLoop(port: port)
        defer { load.stop() }
        try require("requests flowing") { load.servedCount > 20 }

        gate.hold()
        let restartBegan = monotonicNanoseconds()
        try manager("RestartService", "s", [web])
        var released: [Int32] = []
        try require("every pid of \(web) replaced", timeout: 60, poll: 0.02) {
            for pid in gate.waiting.subtracting(released).sorted() {
                // The daemon spawned `pid` (it waits at the gate) and has handled that spawn
                // before it answers: what it says now already holds any stop it would send.
                let ready = try self.number(web, "Running")
                let processes = self.instances(of: web, daemon: daemon).count
                let stopped = gate.pids("term").intersection(before)
                XCTAssertGreaterThanOrEqual(ready, 3, "only \(ready) ready while the new \(pid) is not yet")
                XCTAssertLessThanOrEqual(processes, 4, "more than one extra process while \(pid) waits")
                if released.isEmpty {
                    XCTAssertEqual(stopped, [], "old processes stopped before the first new one (\(pid)) was ready")
                } else {
                    XCTAssertLessThanOrEqual(stopped.count, released.count,
                                             "more old processes stopped than new ones had been ready")
                }
                released.append(pid)
                gate.release(pid)
            }
            let now = Set(try self.pids(web))
            let wanted = try self.number(web, "Instances"), running = try self.number(web, "Running")
            return now.count == 3 && now.isDisjoint(with: before) && wanted == 3 && running == 3
        }
        let after = Set(try pids(web))
        try require("requests served by the new processes") { load.servedBy(Set(after.map(String.init))) }
        let result = load.stop()
        XCTAssertEqual(result.refused, 0, "refused connections during the rolling restart")
        XCTAssertEqual(result.incomplete, [], "failed requests during the rolling restart")
        print("rolling restart: \(result.served) requests, \(result.refused + result.incomplete.count) failed")

        // The processes' own story: four new ones (three replacements and the surge one), all
        // of them held and released; every old one stopped; never fewer than three ready.
        XCTAssertEqual(released.count, 4, "three replacements and one temporary extra instance: \(released)")
        XCTAssertTrue(after.isSubset(of: Set(released)))
        try require("every old process and the extra one noted SIGTERM") {
            gate.pids("term") == before.union(Set(released).subtracting(after))
        }
        XCTAssertEqual(gate.fewestReady(since: restartBegan), 3, "notes: \(gate.notes)")
        let firstStop = try XCTUnwrap(gate.notes.first { $0.what == "term" })
        let firstNewReady = try XCTUnwrap(gate.notes.first { $0.what == "ready" && !before.contains($0.pid) })
        XCTAssertLessThan(firstNewReady.time, firstStop.time, "an old process got SIGTERM before any new one was ready")

        // The daemon's events say the same: each old pid exited cleanly, four processes started.
        try require("ProcessExited for every old pid", poll: 0.05) {
            let exited = events.events("ProcessExited", service: web).compactMap { ($0["pid"] as? NSNumber)?.int32Value }
            return before.isSubset(of: Set(exited))
        }
        for exit in events.events("ProcessExited", service: web) where before.contains((exit["pid"] as? NSNumber)?.int32Value ?? 0) {
            XCTAssertEqual(exit["code"] as? String, "exited", "an old process was not stopped cleanly: \(exit)")
        }
        let started = events.events("ProcessStarted", service: web).compactMap { ($0["pid"] as? NSNumber)?.int32Value }
        XCTAssertEqual(Set(started), Set(released), "ProcessStarted for exactly the four new processes")
        // Every instance number 0..<3 has a process again; nothing of the extra one is left.
        _ = try requireInstances(3, of: web, daemon: daemon)
    }

    func testSingleInstanceRestartIsStopThenStart() throws {
        let web = service("web"), sleeper = service("sleeper")
        let port = try freePort()
        try startBusDaemon(try webAndSleeper(web: web, sleeper: sleeper, port: port, instances: 1))
        let before = try pids(web)
        let events = try followEvents()
        try manager("RestartService", "s", [web])
        try require("a new pid for \(web)", timeout: 20) {
            let now = try self.pids(web), state = try self.state(web)
            return now.count == 1 && now != before && state == "running"
        }
        let order = events.objects.compactMap { e -> String? in
            guard e["name"] as? String == web else { return nil }
            return e["event"] as? String == "ProcessExited" ? "exited" : e["event"] as? String == "ProcessStarted" ? "started" : nil
        }
        XCTAssertEqual(order, ["exited", "started"])
        XCTAssertEqual(try httpGet(port: port).status, 200)
    }
}
