// Ringmaster as a systemd citizen (issue 3): the real units/ringmaster.service and .socket in
// the session's systemd --user — enabled, socket-activated, inspected with `systemctl show`,
// restarted without refusing a connection, and restarted by the watchdog when stalled.
import Foundation
import Glibc
import XCTest

final class SystemdUnitTests: SystemdUnitTestCase {
    /// `systemctl --user enable`, then the first connection to ringmaster.socket starts
    /// ringmaster.service, which hands the socket (FileDescriptorName=http) to its workers.
    func testEnabledAndStartedThroughTheSocketUnit() throws {
        let web = service("web")
        let port = try freePort()
        let unit = try installUnits("""
            [sockets.http]
            systemd = "http"

            \(httpWorkers(web))
            """, socketPort: port)
        try unit.systemctl("enable", "--runtime", RingmasterUnit.socket, RingmasterUnit.service)
        XCTAssertEqual(unit.property("UnitFileState"), "enabled-runtime")
        XCTAssertEqual(unit.property("UnitFileState", of: RingmasterUnit.socket), "enabled-runtime")
        try unit.systemctl("start", RingmasterUnit.socket)
        XCTAssertEqual(unit.activeState, "inactive", "the service waits for the first connection")

        // The first request waits in the socket's backlog while everything starts.
        let reply = try HTTPConnection(port: port, timeout: 30).get("/first")
        XCTAssertEqual(reply.status, 200)
        XCTAssertEqual(keyValues(reply.body)["service"], web)
        let daemon = try unit.requireActive()
        _ = try requireInstances(2, of: web, parent: daemon)

        let show = unit.properties(["Type", "ActiveState", "StatusText", "NFileDescriptorStore", "NotifyAccess"])
        XCTAssertEqual(show["Type"], "notify")
        XCTAssertEqual(show["NotifyAccess"], "main")
        XCTAssertEqual(show["ActiveState"], "active")
        try require("StatusText \"1 running\"", timeout: 10) { unit.statusText == "1 running" }
        XCTAssertEqual(show["NFileDescriptorStore"], "0", "systemd owns this socket: nothing to store")

        try unit.systemctl("stop", RingmasterUnit.service, RingmasterUnit.socket)
        XCTAssertEqual(unit.activeState, "inactive")
        XCTAssertTrue(waitUntil(timeout: 5) { Processes.withServicePrefix(self.prefix).isEmpty })
    }

    /// READY=1 only once every autostart service is ready: `systemctl start` returns when the
    /// workers accept; STATUS= counts; the socket ringmasterd bound itself is in the fd store.
    func testShowReportsReadinessStatusAndTheFDStore() throws {
        let web = service("web"), broken = service("broken")
        let port = try freePort()
        let unit = try installUnits("""
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            \(httpWorkers(web, instances: 3))

            [services.\(broken)]
            command = ["/bin/sh", "-c", "exit 3"]
            restart-delay = "10ms"
            start-limit = { count = 2, interval = "10s" }
            """)
        try unit.systemctl("start", RingmasterUnit.service)   // returns once READY=1 came
        let daemon = try unit.requireActive()
        // Ready means ready: every worker accepts now, no retry needed.
        XCTAssertEqual(try httpGet(port: port).status, 200)
        XCTAssertEqual(instances(of: web, parent: daemon).count, 3)
        let show = unit.properties(["Type", "ActiveState", "StatusText", "NFileDescriptorStore"])
        XCTAssertEqual(show["Type"], "notify")
        XCTAssertEqual(show["ActiveState"], "active")
        XCTAssertEqual(show["StatusText"], "1 running, 1 failed (\(broken))")
        XCTAssertEqual(show["NFileDescriptorStore"], "1", "the socket ringmasterd bound is in the fd store")
    }

    /// A client looping on a socket ringmasterd bound itself sees no refused connection while
    /// `systemctl --user restart ringmaster` replaces the daemon and its workers: the socket
    /// stays open in systemd's fd store and the new daemon takes it back.
    func testRestartRefusesNoConnection() throws {
        let web = service("web")
        let port = try freePort()
        let unit = try installUnits("""
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            \(httpWorkers(web))
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let first = try unit.requireActive()
        let oldWorkers = Set(try requireInstances(2, of: web, parent: first).values.map { String($0.pid) })
        try require("NFileDescriptorStore=1") { unit.property("NFileDescriptorStore") == "1" }

        let client = HTTPClientLoop(port: port)
        defer { client.stop() }
        try require("requests served before the restart", timeout: 10) { client.servedCount >= 5 }
        try unit.systemctl("restart", RingmasterUnit.service)
        let second = try unit.requireActive(differentFrom: first)
        let newWorkers = Set(try requireInstances(2, of: web, parent: second).values.map { String($0.pid) })
        try require("requests served by the new workers", timeout: 15) { client.servedBy(newWorkers) }
        let result = client.stop()

        XCTAssertEqual(result.refused, 0, "connections refused across the restart (served \(result.served))")
        XCTAssertTrue(result.servedBy.isSuperset(of: newWorkers) || !result.servedBy.isDisjoint(with: newWorkers))
        XCTAssertFalse(result.servedBy.isDisjoint(with: oldWorkers), "the old workers served too")
        if !result.incomplete.isEmpty {
            // A worker stopped by SIGTERM in the middle of a request drops that one request;
            // that is the worker's business, not a refused connection.
            print("incomplete requests across the restart: \(result.incomplete)")
        }
        XCTAssertEqual(unit.property("NFileDescriptorStore"), "1", "still exactly one stored socket")
        let said = (try? Journal.entries(["_PID=\(second)"]))?.messages.joined(separator: "\n") ?? ""
        XCTAssertTrue(said.contains("taken back from systemd's fd store"), "the new ringmasterd reused the stored socket:\n\(said)")
    }

    /// The watchdog pings come from the event loop itself: a stopped (SIGSTOP) daemon stops
    /// pinging, and systemd restarts it (WatchdogSec= shortened by a drop-in for the test).
    func testWatchdogRestartsAStalledDaemon() throws {
        let ticker = service("ticker")
        let unit = try installUnits("""
            [services.\(ticker)]
            command = ["sleep", "1000"]
            """)
        // SIGABRT (the watchdog signal) stays pending in a stopped process: SIGKILL it soon.
        try unit.addDropIn("watchdog", ["WatchdogSec=1s", "TimeoutAbortSec=1s"])
        try unit.systemctl("start", RingmasterUnit.service)
        let first = try unit.requireActive()
        XCTAssertEqual(unit.property("WatchdogUSec"), "1s")

        // It pings: the last-ping timestamp (µs, monotonic) moves while the loop runs, and it
        // outlives several watchdog periods while healthy — shown by a ping three periods
        // after the first one, still from the first daemon, which systemd never restarted.
        func lastPing() -> UInt64 { UInt64(unit.property("WatchdogTimestampMonotonic")) ?? 0 }
        let ping = try require("a first watchdog ping", timeout: 5, poll: 0.1) { let p = lastPing(); return p > 0 ? p : nil }
        try require("a watchdog ping 3 s (three periods) after the first one, at \(ping) µs", timeout: 10, poll: 0.1) {
            lastPing() >= ping + 3_000_000
        }
        XCTAssertEqual(unit.mainPID, first, "restarted although healthy")
        XCTAssertEqual(unit.property("NRestarts"), "0")

        kill(first, SIGSTOP)
        defer { kill(first, SIGCONT) }
        let second = try unit.requireActive(timeout: 20, differentFrom: first)
        XCTAssertNotEqual(second, first)
        XCTAssertEqual(unit.property("NRestarts"), "1")
        XCTAssertTrue(waitUntil(timeout: 5) { !Processes.isAlive(first) }, "the stalled daemon \(first) is gone")
        _ = try requireInstances(1, of: ticker, parent: second)
    }
}
