// A deploy script's view (SPEC "Commands wait for their result", "Canary"): `ringctl restart`
// and `ringctl reload` wait for the result and exit 0 only once every instance was replaced;
// a broken release (exits at once, or never says READY=1 within ready-timeout) is rolled back
// by its canary: exit 1 naming the instance and the reason, the old pids serve on, and a
// client hammering the shared socket sees no failed request either way.
import Foundation
import Glibc
import XCTest

extension DBusTestCase {
    /// The release the launcher runs: "good" (the HTTP server), "crash" (exits 3 at once),
    /// "silent" (runs, never says READY=1). Read at each spawn from `version` unless the
    /// command line names one.
    fileprivate func deployConfig(web: String, port: UInt16, command: String? = nil) throws -> String {
        let server = dir + "/server.py"
        try gracefulHTTPServer.write(toFile: server, atomically: true, encoding: .utf8)
        let launcher = dir + "/launch.sh"
        try """
            v="${1:-$(cat \(dir)/version)}"
            case "$v" in
              good) exec python3 \(server) ;;
              crash) echo "release $v is broken" >&2; exit 3 ;;
              silent) exec sleep 100000 ;;
            esac
            exit 9
            """.write(toFile: launcher, atomically: true, encoding: .utf8)
        return """
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            [services.\(web)]
            command = ["/bin/sh", \(TOML.string(launcher))\(command.map { ", " + TOML.string($0) } ?? "")]
            instances = 3
            sockets = ["http"]
            ready = "notify"
            ready-timeout = "3s"
            stop-timeout = "5s"
            """
    }

    fileprivate func release(_ version: String) throws {
        try version.write(toFile: dir + "/version", atomically: true, encoding: .utf8)
    }
}

final class DeployTests: DBusTestCase {

    private func startWeb() throws -> (web: String, port: UInt16, daemon: Daemon, pids: Set<Int32>) {
        let web = service("web")
        let port = try freePort()
        try release("good")
        let daemon = try startBusDaemon(try deployConfig(web: web, port: port))
        let pids = Set(try pids(web))
        XCTAssertEqual(pids.count, 3)
        return (web, port, daemon, pids)
    }

    /// Asserts a failed deploy's ringctl: exit 1, one line naming the canary and the reason.
    private func assertRolledBack(_ r: CommandResult, _ web: String, reason: String,
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("ringctl: \(web): rolled back: \(web).3 \(reason)"), r.stderr, file: file, line: line)
        XCTAssertEqual(r.stdout, "", "no progress lines when stdout is not a terminal", file: file, line: line)
    }

    /// What serves afterwards: the given pids, all ready, the canary gone.
    private func assertServing(_ web: String, _ pids: Set<Int32>, daemon: Daemon,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try state(web), "running", file: file, line: line)
        try require("\(web) back to its three old processes", timeout: 10) {
            let now = Set(try self.pids(web)), running = try self.number(web, "Running")
            return now == pids && running == 3
        }
        _ = try requireInstances(3, of: web, daemon: daemon)
    }

    func testRestartWithAGoodReleaseExitsZeroOnceEveryInstanceIsReplaced() throws {
        let (web, port, _, before) = try startWeb()
        let load = HTTPClientLoop(port: port)
        defer { load.stop() }
        try require("requests flowing") { load.servedCount > 20 }

        let r = try ringctl(["restart", web], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "", "no progress lines when stdout is not a terminal")
        // Done means done: at the moment ringctl returns, every pid is new and ready.
        let after = Set(try pids(web))
        XCTAssertEqual(after.count, 3)
        XCTAssertTrue(after.isDisjoint(with: before), "old \(before), now \(after)")
        XCTAssertEqual(try number(web, "Running"), 3)
        try require("requests served by the new processes") { load.servedBy(Set(after.map(String.init))) }
        let result = load.stop()
        XCTAssertEqual(result.refused, 0)
        XCTAssertEqual(result.incomplete, [])
        print("good deploy: \(result.served) requests, \(result.refused + result.incomplete.count) failed")
    }

    func testRestartWithAReleaseThatExitsIsRolledBack() throws {
        let (web, port, daemon, before) = try startWeb()
        let load = HTTPClientLoop(port: port)
        defer { load.stop() }
        try require("requests flowing") { load.servedCount > 20 }

        try release("crash")
        let r = try ringctl(["restart", web], timeout: 60)
        assertRolledBack(r, web, reason: "exited with status 3 before it was ready")
        XCTAssertEqual(Set(try pids(web)).subtracting([0]), before, "the old processes were never stopped")
        try assertServing(web, before, daemon: daemon)
        let served = load.servedCount
        try require("the old processes still serve") { load.servedCount > served + 20 }
        let result = load.stop()
        XCTAssertEqual(result.refused, 0)
        XCTAssertEqual(result.incomplete, [])
        XCTAssertEqual(result.servedBy, Set(before.map(String.init)), "only the old processes served")

        // The fix: the same command now succeeds.
        try release("good")
        XCTAssertEqual(try ringctl(["restart", web], timeout: 60).status, 0)
        XCTAssertTrue(Set(try pids(web)).isDisjoint(with: before))
    }

    func testRestartWithAReleaseThatNeverSaysReadyIsRolledBackAtReadyTimeout() throws {
        let (web, port, daemon, before) = try startWeb()
        let load = HTTPClientLoop(port: port)
        defer { load.stop() }
        try require("requests flowing") { load.servedCount > 20 }

        try release("silent")
        let began = monotonicNanoseconds()
        let r = try ringctl(["restart", web], timeout: 60)
        let took = Double(monotonicNanoseconds() - began) / 1e9
        assertRolledBack(r, web, reason: "was not ready within 3s (ready-timeout)")
        XCTAssertGreaterThanOrEqual(took, 2.9, "ringctl returned before ready-timeout passed")
        try assertServing(web, before, daemon: daemon)
        let result = load.stop()
        XCTAssertEqual(result.refused, 0)
        XCTAssertEqual(result.incomplete, [])
        XCTAssertEqual(try property(web, "LastExitReason") as? String, "ready-timeout")
    }

    func testReloadOfABrokenCommandKeepsTheOldConfigAndAFixedOneDeploys() throws {
        let web = service("web")
        let port = try freePort()
        try release("good")
        let daemon = try startBusDaemon(try deployConfig(web: web, port: port, command: "good"))
        let before = Set(try pids(web))
        let events = try followEvents()
        let load = HTTPClientLoop(port: port)
        defer { load.stop() }
        try require("requests flowing") { load.servedCount > 20 }

        try deployConfig(web: web, port: port, command: "crash").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let bad = try ringctl(["reload"], timeout: 60)
        assertRolledBack(bad, web, reason: "exited with status 3 before it was ready")
        try assertServing(web, before, daemon: daemon)
        try require("Reloaded(false) naming the rollback", timeout: 10) {
            events.objects.contains { $0["event"] as? String == "Reloaded" && $0["ok"] as? Bool == false
                && ($0["message"] as? String ?? "").contains("\(web) kept its old config: \(web).3 exited with status 3") }
        }
        // The same broken file again is tried again (the service kept its old config).
        assertRolledBack(try ringctl(["reload"], timeout: 60), web, reason: "exited with status 3 before it was ready")

        try deployConfig(web: web, port: port, command: "good").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        // (the old config again: nothing to do, at once)
        let same = try ringctl(["reload"], timeout: 60)
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertEqual(Set(try pids(web)), before)

        try deployConfig(web: web, port: port).write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let good = try ringctl(["reload"], timeout: 60)
        XCTAssertEqual(good.status, 0, good.stderr)
        let after = Set(try pids(web))
        XCTAssertEqual(after.count, 3)
        XCTAssertTrue(after.isDisjoint(with: before), "every instance replaced once ringctl reload returns")
        let result = load.stop()
        XCTAssertEqual(result.refused, 0)
        XCTAssertEqual(result.incomplete, [])
    }

    func testNoBlockReturnsAtOnceAndBusctlCanWait() throws {
        let (web, _, daemon, before) = try startWeb()
        try release("silent")
        let began = monotonicNanoseconds()
        let r = try ringctl(["restart", "--no-block", web])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertLessThan(Double(monotonicNanoseconds() - began) / 1e9, 2.5, "--no-block waited")
        XCTAssertEqual(try number(web, "Running"), 3)
        XCTAssertEqual(try requireInstances(4, of: web, daemon: daemon).count, 4, "the canary is still starting")
        try assertServing(web, before, daemon: daemon)

        // busctl waits for its own call: RestartServiceAndWait replies with the result.
        let call = try busctl(["--timeout=60", "call", API.name, API.managerPath, API.manager, "RestartServiceAndWait", "s", web])
        XCTAssertNotEqual(call.status, 0)
        XCTAssertTrue(call.stderr.contains("\(web): rolled back: \(web).3 was not ready within 3s (ready-timeout)"), call.stderr)
        try release("good")
        let ok = try busctl(["--timeout=60", "call", API.name, API.managerPath, API.manager, "RestartServiceAndWait", "s", web])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(Set(try pids(web)).isDisjoint(with: before))
    }

    /// Ctrl-C stops the waiting, not the change: the canary still gets its verdict.
    func testInterruptingRingctlDoesNotStopTheChange() throws {
        let (web, _, daemon, before) = try startWeb()
        try release("silent")
        let ringctl = Process()
        ringctl.executableURL = URL(fileURLWithPath: try Binaries.ringctl())
        ringctl.arguments = ["restart", web]
        var env = ProcessInfo.processInfo.environment
        if let busAddress { env["DBUS_SESSION_BUS_ADDRESS"] = busAddress }
        ringctl.environment = env
        ringctl.standardOutput = FileHandle.nullDevice
        ringctl.standardError = FileHandle.nullDevice
        try ringctl.run()
        _ = try requireInstances(4, of: web, daemon: daemon)   // the canary runs
        kill(ringctl.processIdentifier, SIGINT)
        ringctl.waitUntilExit()
        XCTAssertEqual(ringctl.terminationReason, .uncaughtSignal)
        XCTAssertEqual(try number(web, "Instances"), 3)
        try require("the canary rolled back after ready-timeout, without ringctl", timeout: 15) {
            (try self.property(web, "LastExitReason") as? String) == "ready-timeout"
        }
        try assertServing(web, before, daemon: daemon)
    }

    /// On a terminal (script(1) gives ringctl one), one line per instance replaced.
    func testProgressOnATerminal() throws {
        let (web, _, _, before) = try startWeb()
        var env = ProcessInfo.processInfo.environment
        if let busAddress { env["DBUS_SESSION_BUS_ADDRESS"] = busAddress }
        env["NO_COLOR"] = "1"
        let r = try runCommand(["script", "-qec", "\(try Binaries.ringctl()) restart \(web)", "/dev/null"],
                               environment: env, timeout: 60)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let lines = r.stdout.replacingOccurrences(of: "\r", with: "").split(separator: "\n").map(String.init)
        let after = Set(try pids(web))
        XCTAssertEqual(lines.filter { $0.hasPrefix("\(web).3: started, pid ") }.count, 1, r.stdout)
        for i in 0..<3 {
            let line = try XCTUnwrap(lines.first { $0.hasPrefix("\(web).\(i): replaced pid ") }, r.stdout)
            let numbers = line.split(separator: " ").compactMap { Int32($0) }
            XCTAssertEqual(numbers.count, 2, line)
            XCTAssertTrue(before.contains(numbers[0]) && after.contains(numbers[1]), line)
        }
        XCTAssertEqual(lines.count, 4, r.stdout)
    }

    func testStopStartAndScaleReturnOnceDone() throws {
        let (web, _, _, _) = try startWeb()
        XCTAssertEqual(try ringctl(["stop", web]).status, 0)
        XCTAssertEqual(try pids(web), [], "no process left once stop returns")
        XCTAssertEqual(try state(web), "stopped")
        XCTAssertEqual(try ringctl(["start", web]).status, 0)
        XCTAssertEqual(try number(web, "Running"), 3, "every instance ready once start returns")
        XCTAssertEqual(try ringctl(["scale", web, "5"]).status, 0)
        XCTAssertEqual(try number(web, "Running"), 5)
        XCTAssertEqual(try ringctl(["scale", web, "2"]).status, 0)
        XCTAssertEqual(try pids(web).count, 2, "the instances scaled away are gone once scale returns")
        // A start that cannot succeed says why.
        try release("crash")
        XCTAssertEqual(try ringctl(["stop", web]).status, 0)
        let start = try ringctl(["start", web], timeout: 60)
        XCTAssertEqual(start.status, 1)
        XCTAssertTrue(start.stderr.hasPrefix("ringctl: \(web) failed: "), start.stderr)
        XCTAssertTrue(start.stderr.contains("start limit hit"), start.stderr)
    }
}

/// The same under systemd: a rollback is in the unit's STATUS= until the next restart.
final class DeployUnitTests: SystemdUnitTestCase {
    func testARollbackIsInTheUnitsStatusUntilTheNextGoodRestart() throws {
        let web = service("web")
        try release("good")
        let unit = try installUnits(try deployConfig(web: web, port: try freePort()))
        try unit.systemctl("start", RingmasterUnit.service)
        _ = try unit.requireActive()
        try release("crash")
        XCTAssertEqual(try ringctl(["restart", web], timeout: 60).status, 1)
        try require("the rollback in STATUS=", timeout: 10) {
            unit.statusText == "1 running; \(web) rolled back: \(web).3 exited with status 3 before it was ready"
        }
        try release("good")
        XCTAssertEqual(try ringctl(["restart", web], timeout: 60).status, 0)
        try require("STATUS= without it", timeout: 10) { unit.statusText == "1 running" }
    }
}
