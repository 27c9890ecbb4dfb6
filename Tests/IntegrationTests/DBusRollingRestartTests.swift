// RestartService with several instances: one at a time, each old process stopped only once a
// replacement is ready, so a client hammering the shared socket sees no failed request.
import Foundation
import Glibc
import XCTest

final class DBusRollingRestartTests: DBusTestCase {
    func testRollingRestartUnderHTTPLoadFailsNoRequestAndReplacesEveryPID() throws {
        let web = service("web"), sleeper = service("sleeper")
        let port = try freePort()
        let daemon = try startBusDaemon(try webAndSleeper(web: web, sleeper: sleeper, port: port, instances: 3))
        let before = Set(try pids(web))
        XCTAssertEqual(before.count, 3)
        let events = try followEvents()

        // The load: sequential requests on fresh connections from another thread.
        final class Load: @unchecked Sendable {
            let lock = NSLock()
            var ok = 0
            var failures: [String] = []
            var servedBy = Set<String>()
            var stop = false
        }
        let load = Load()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while !load.lock.withLock({ load.stop }) {
                do {
                    let reply = try httpGet(port: port, "/")
                    load.lock.withLock {
                        if reply.status == 200 { load.ok += 1; load.servedBy.insert(keyValues(reply.body)["pid"] ?? "?") }
                        else { load.failures.append("HTTP \(reply.status)") }
                    }
                } catch {
                    load.lock.withLock { load.failures.append("\(error)") }
                }
            }
            done.signal()
        }
        try require("requests flowing") { load.lock.withLock { load.ok > 20 } }

        try manager("RestartService", "s", [web])
        // Done: three fresh pids, none of the old ones, and back to three wanted instances.
        try require("every pid of \(web) replaced", timeout: 60, poll: 0.05) {
            let now = Set(try self.pids(web))
            let wanted = try self.number(web, "Instances"), running = try self.number(web, "Running")
            return now.count == 3 && now.isDisjoint(with: before) && wanted == 3 && running == 3
        }
        let after = Set(try pids(web))
        try require("requests served by the new processes") {
            load.lock.withLock { !load.servedBy.isDisjoint(with: Set(after.map(String.init))) }
        }
        load.lock.withLock { load.stop = true }
        done.wait()
        XCTAssertEqual(load.failures, [], "failed requests during the rolling restart")
        print("rolling restart: \(load.ok) requests, \(load.failures.count) failed")

        // The events tell the story: every old pid exited after a new one had started.
        let started = events.events("ProcessStarted", service: web)
        let exited = events.events("ProcessExited", service: web)
        for pid in before {
            let exit = try XCTUnwrap(exited.firstIndex { ($0["pid"] as? NSNumber)?.int32Value == pid }, "no ProcessExited for \(pid)")
            let exitObject = exited[exit]
            XCTAssertEqual(exitObject["code"] as? String, "exited", "pid \(pid) was not stopped cleanly")
        }
        XCTAssertEqual(started.count, 4, "three replacements and one temporary extra instance: \(started)")
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
