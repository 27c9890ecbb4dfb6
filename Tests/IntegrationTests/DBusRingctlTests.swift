// ringctl against a real daemon: the same API as busctl, friendlier; exit codes as systemctl's.
import Foundation
import Glibc
import XCTest

final class DBusRingctlTests: DBusTestCase {
    private func startWebAndSleeper(instances: Int = 2) throws -> (web: String, sleeper: String, daemon: Daemon) {
        let web = service("web"), sleeper = service("sleeper")
        let daemon = try startBusDaemon(try webAndSleeper(web: web, sleeper: sleeper, port: try freePort(), instances: instances))
        return (web, sleeper, daemon)
    }

    func testNotRunning() throws {
        let status = try ringctl(["status"])
        XCTAssertEqual(status.status, 3)
        XCTAssertEqual(status.stderr, "ringctl: ringmasterd is not running (no io.ringmaster.Ringmaster1 on the user bus)\n")
        let stop = try ringctl(["stop", "web"])
        XCTAssertEqual(stop.status, 1)
        XCTAssertEqual(stop.stderr, "ringctl: ringmasterd is not running (no io.ringmaster.Ringmaster1 on the user bus)\n")
    }

    func testNoUserBus() throws {
        var env = ProcessInfo.processInfo.environment
        env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=\(dir)/no-bus"
        var r = try runCommand([try Binaries.ringctl(), "status"], environment: env)
        XCTAssertEqual(r.status, 3)
        XCTAssertEqual(r.stderr, "ringctl: cannot connect to the user bus at unix:path=\(dir)/no-bus: No such file or directory\n")
        env["DBUS_SESSION_BUS_ADDRESS"] = nil
        env["XDG_RUNTIME_DIR"] = nil
        r = try runCommand([try Binaries.ringctl(), "stop", "web"], environment: env)
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "ringctl: cannot connect to the user bus: neither $DBUS_SESSION_BUS_ADDRESS nor $XDG_RUNTIME_DIR is set\n")
    }

    func testStatusTableJSONAndExitCodes() throws {
        let (web, sleeper, daemon) = try startWebAndSleeper()
        let table = try ringctl(["status"])
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("ringmasterd ") == true, table.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("NAME") && $0.contains("STATE") && $0.contains("INSTANCES")
            && $0.contains("PIDS") && $0.contains("UPTIME") && $0.contains("CPU") && $0.contains("MEMORY") && $0.contains("RESTARTS") })
        let webLine = try XCTUnwrap(lines.first { $0.hasPrefix(web + " ") }, table.stdout)
        XCTAssertTrue(webLine.contains(" running "), webLine)
        XCTAssertTrue(webLine.contains(" 2/2 "), webLine)
        for pid in try pids(web) { XCTAssertTrue(webLine.contains(String(pid)), webLine) }
        XCTAssertFalse(table.stdout.contains("\u{1B}["), "no colour when stdout is not a terminal")

        let json = try ringctl(["status", "--json", web])
        XCTAssertEqual(json.status, 0, json.stderr)
        let objects = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(objects.count, 1)
        let o = objects[0]
        XCTAssertEqual(o["name"] as? String, web)
        XCTAssertEqual(o["state"] as? String, "running")
        XCTAssertEqual((o["instances"] as? NSNumber)?.intValue, 2)
        XCTAssertEqual((o["running"] as? NSNumber)?.intValue, 2)
        XCTAssertEqual(Set((o["pids"] as? [NSNumber] ?? []).map(\.int32Value)), Set(try pids(web)))
        for key in ["uptime_usec", "cpu_usage_nsec", "memory_current", "restarts", "state_change_timestamp"] {
            XCTAssertNotNil(o[key] as? NSNumber, key)
        }

        let missing = try ringctl(["status", web, "nope"])
        XCTAssertEqual(missing.status, 4)
        XCTAssertEqual(missing.stderr, "ringctl: no service named \"nope\"\n")

        XCTAssertEqual(try ringctl(["stop", sleeper]).status, 0)
        try requireService(sleeper, state: "stopped")
        XCTAssertEqual(try ringctl(["status", sleeper]).status, 3, "a named service that is not running")
        XCTAssertEqual(try ringctl(["status"]).status, 0, "the daemon itself runs")
        _ = daemon
    }

    func testStartStopRestart() throws {
        let (web, sleeper, daemon) = try startWebAndSleeper()
        var r = try ringctl(["stop", sleeper, web])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout + r.stderr, "")
        try requireService(sleeper, state: "stopped", running: 0)
        try requireService(web, state: "stopped", running: 0)
        r = try ringctl(["start", sleeper, "nope", web])
        XCTAssertEqual(r.status, 4)
        XCTAssertEqual(r.stderr, "ringctl: no service named \"nope\"\n")
        try requireService(sleeper, running: 1)
        try requireService(web, running: 2)
        let before = Set(try pids(web))
        r = try ringctl(["restart", web])
        XCTAssertEqual(r.status, 0, r.stderr)
        try require("every pid of \(web) replaced", timeout: 30) {
            let now = Set(try self.pids(web)), wanted = try self.number(web, "Instances")
            return now.count == 2 && now.isDisjoint(with: before) && wanted == 2
        }
        _ = try requireInstances(2, of: web, daemon: daemon)
    }

    func testScaleAndKill() throws {
        let (web, sleeper, daemon) = try startWebAndSleeper()
        var r = try ringctl(["scale", web, "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try requireService(web, running: 3, instances: 3)
        _ = try requireInstances(3, of: web, daemon: daemon)
        r = try ringctl(["scale", web, "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try requireService(web, running: 1, instances: 1)
        _ = try requireInstances(1, of: web, daemon: daemon)
        // 0 is a valid count (issue 9): no process left, and back again.
        r = try ringctl(["scale", web, "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try require("no process of \(web) left", timeout: 15, poll: 0.05) {
            self.instances(of: web, daemon: daemon).isEmpty && (try? self.number(web, "Instances")) == 0
        }
        r = try ringctl(["scale", web, "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try requireService(web, running: 1, instances: 1)
        r = try ringctl(["scale", web, "10001"])
        XCTAssertNotEqual(r.status, 0)
        r = try ringctl(["scale", "nope", "2"])
        XCTAssertEqual(r.status, 4)

        let before = try pids(sleeper)
        r = try ringctl(["kill", sleeper, "--signal", "KILL"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try require("the killed \(sleeper) replaced") { let p = try self.pids(sleeper); return p.count == 1 && p != before }
        XCTAssertEqual(try property(sleeper, "LastExitStatus") as? NSNumber, NSNumber(value: SIGKILL))
        r = try ringctl(["kill", sleeper, "-s", "TREM"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("did you mean \"TERM\"?"), r.stderr)
        r = try ringctl(["kill", "nope"])
        XCTAssertEqual(r.status, 4)
        XCTAssertEqual(r.stderr, "ringctl: no service named \"nope\"\n")
    }

    func testEventsOneLineEach() throws {
        let (_, sleeper, _) = try startWebAndSleeper()
        let json = try followEvents()
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        let text = try EventFollower([try Binaries.ringctl(), "events"], environment: env)
        try require("the text follower subscribed", poll: 0.1) {
            _ = try? self.manager("Reload")
            return text.lines.contains { $0.contains("reload") }
        }
        let old = try XCTUnwrap(try pids(sleeper).first)
        XCTAssertEqual(try ringctl(["kill", sleeper, "--signal", "KILL"]).status, 0)
        try requireService(sleeper, running: 1)
        let new = try XCTUnwrap(try pids(sleeper).first)
        try require("ProcessExited, ProcessStarted, ServiceStateChanged as JSON", poll: 0.05) {
            json.events("ProcessExited", service: sleeper).contains {
                ($0["pid"] as? NSNumber)?.int32Value == old && $0["code"] as? String == "killed"
                    && ($0["status"] as? NSNumber)?.int32Value == SIGKILL && ($0["instance"] as? NSNumber)?.intValue == 0
            }
            && json.events("ProcessStarted", service: sleeper).contains { ($0["pid"] as? NSNumber)?.int32Value == new }
            && json.events("ServiceStateChanged", service: sleeper).contains { $0["state"] as? String == "running" }
        }
        try require("the same as text lines", poll: 0.05) {
            let lines = text.lines
            return lines.contains { $0.hasSuffix(" \(sleeper).0: pid \(old) killed by SIGKILL") }
                && lines.contains { $0.hasSuffix(" \(sleeper).0: started, pid \(new)") }
                && lines.contains { $0.hasSuffix(" \(sleeper): backoff") }
        }
        // --count: exits by itself.
        let counted = try EventFollower([try Binaries.ringctl(), "events", "-n", "1"])
        try require("events -n 1 to exit after one event", poll: 0.1) {
            _ = try? self.manager("Reload")
            return !counted.isRunning
        }
        XCTAssertEqual(counted.lines.count, 1)
    }

    func testLogs() throws {
        let talker = service("talker")
        try startBusDaemon("""
            [services.\(talker)]
            command = ["sh", "-c", "echo first-line; echo second-line; exec sleep 100000"]
            stop-timeout = "2s"
            """)
        // The service's own lines (its identifier) and ringmasterd's events about it.
        try require("both lines and the started event in `ringctl logs`", poll: 0.1) {
            let r = try self.ringctl(["logs", talker])
            return r.status == 0 && r.stdout.contains("first-line") && r.stdout.contains("second-line")
                && r.stdout.contains("\(talker).0 started")
        }
        let last = try ringctl(["logs", talker, "-n", "1"])
        XCTAssertEqual(last.status, 0, last.stderr)
        XCTAssertEqual(last.stdout.split(separator: "\n").filter { !$0.hasPrefix("--") }.count, 1, last.stdout)
        let missing = try ringctl(["logs", "nope"])
        XCTAssertEqual(missing.status, 4)
        XCTAssertEqual(missing.stderr, "ringctl: no service named \"nope\"\n")
        // -f follows: a line written later shows up.
        let follow = try EventFollower([try Binaries.ringctl(), "logs", talker, "-f", "-n", "0"])
        defer { follow.stop() }
        // (Restarted once a second until the follower has caught a start: it may not be reading yet.)
        try require("`logs -f` to show a new line", timeout: 15, poll: 1) {
            _ = try? self.manager("RestartService", "s", [talker])
            return follow.lines.contains { $0.contains("first-line") }
        }
    }

    func testReload() throws {
        let (_, sleeper, daemon) = try startWebAndSleeper()
        let config = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        // A good reload is applied: the service it adds runs.
        let extra = service("extra")
        let good = config + "\n\n[services.\(extra)]\ncommand = [\"sleep\", \"100000\"]\nstop-timeout = \"2s\"\n"
        try good.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let r = try ringctl(["reload"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        try requireService(extra, running: 1)
        // A bad one is refused with file:line:column, and changes nothing.
        let pids = try self.pids(sleeper)
        let badLine = good.split(separator: "\n", omittingEmptySubsequences: false).count + 1
        try (good + "[services.\(sleeper)-bad]\ncommand = 3\n").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let bad = try ringctl(["reload"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.hasPrefix("ringctl: invalid configuration, nothing changed:\n"), bad.stderr)
        XCTAssertTrue(bad.stderr.contains("\(daemon.configPath):\(badLine):"), "no \(daemon.configPath):\(badLine): in \(bad.stderr)")
        XCTAssertEqual(try self.pids(sleeper), pids)
        XCTAssertThrowsError(try self.state(service("sleeper-bad")), "the bad file's service was not added")
        try requireService(extra, running: 1)
    }
}
