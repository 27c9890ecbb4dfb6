// `ringctl why NAME[.N]`: the story of an instance's last exit, its output read from the
// journal by the pid that ended.
import Foundation
import Glibc
import XCTest

final class WhyTests: DBusTestCase {
    func testExitStatusReasonBackoffAndTheLinesItWrote() throws {
        let svc = service("crasher")
        try startBusDaemon("""
            [services.\(svc)]
            command = ["sh", "-c", "echo plain-out-line; echo first-err-line >&2; echo second-err-line >&2; exit 3"]
            restart-delay = "30s"
            restart-delay-max = "30s"
            autostart = false
            """)
        try manager("StartService", "s", [svc])  // (the daemon is `starting` while a service backs off)
        try requireService(svc, state: "backoff")
        // The lines reach the journal through journald's stream: wait for them, with a deadline.
        let why = try require("`ringctl why \(svc).0` with the lines the process wrote") { () -> CommandResult? in
            let r = try self.ringctl(["why", "\(svc).0"])
            return r.status == 0 && ["plain-out-line", "first-err-line", "second-err-line"].allSatisfy(r.stdout.contains) ? r : nil
        }
        let text = why.stdout
        XCTAssertTrue(text.hasPrefix("\(svc).0: backoff; 0 restarts\n"), text)
        XCTAssertTrue(text.contains("Last exit:    exit-code (status 3) at "), text)
        XCTAssertTrue(text.contains("Limits:       none\n"), text)
        XCTAssertTrue(text.contains("Next restart: in "), text)
        let lines = text.split(separator: "\n").map(String.init)
        let errLines = lines.filter { $0.contains(" err  ") }
        XCTAssertEqual(errLines.map { $0.split(separator: " ").last.map(String.init) ?? "" }, ["first-err-line", "second-err-line"], text)
        XCTAssertTrue(lines.contains { $0.hasSuffix(" plain-out-line") && !$0.contains(" err ") }, text)
        // The pid it names is the one InstanceStates keeps, the one that wrote the lines.
        let states = try XCTUnwrap(try property(svc, "InstanceStates") as? [[Any]])
        let lastPID = try XCTUnwrap((states.first?[8] as? NSNumber)?.intValue)
        XCTAssertNotEqual(lastPID, 0)
        XCTAssertTrue(text.contains("(pid \(lastPID))") && text.contains("Output of pid \(lastPID), last 3 lines"), text)

        // NAME alone: its one instance. -n bounds the lines (the last ones the journal got:
        // stdout and stderr are two streams, which journald may read in either order).
        let short = try ringctl(["why", svc, "-n", "2"])
        XCTAssertEqual(short.status, 0, short.stderr)
        let shown = short.stdout.components(separatedBy: "last 2 lines (journal):\n").last?.split(separator: "\n") ?? []
        XCTAssertEqual(shown.count, 2, short.stdout)
        XCTAssertEqual(["plain-out-line", "first-err-line", "second-err-line"].filter { short.stdout.contains($0) }.count, 2, short.stdout)

        let unknown = try ringctl(["why", "nope.0"])
        XCTAssertEqual(unknown.status, 4)
        XCTAssertEqual(unknown.stderr, "ringctl: no service named \"nope.0\"\n")
        let noInstance = try ringctl(["why", "\(svc).7"])
        XCTAssertEqual(noInstance.status, 4)
        XCTAssertEqual(noInstance.stderr, "ringctl: \(svc) has no instance 7 (its instances: 0)\n")
        let huge = try ringctl(["why", String(repeating: "x", count: 100_000)])
        XCTAssertEqual(huge.status, 4)
        XCTAssertLessThan(huge.stderr.utf8.count, 400, "the name is echoed bounded")
    }

    /// A spawn that made no process: the reason `spawn` and ringmasterd's own line about it.
    func testSpawnFailureShowsWhatRingmasterdSaid() throws {
        let svc = service("nothere")
        try startBusDaemon("""
            [services.\(svc)]
            command = ["\(dir)/no-such-program"]
            restart = "never"
            """)
        try requireService(svc, state: "failed")
        let why = try require("`ringctl why \(svc)` with ringmasterd's line") { () -> CommandResult? in
            let r = try self.ringctl(["why", svc])
            return r.status == 0 && r.stdout.contains("no-such-program") && r.stdout.contains("about the failed spawn") ? r : nil
        }
        XCTAssertTrue(why.stdout.contains("Last exit:    spawn (status 127) at ") && why.stdout.contains("(no process was started)"), why.stdout)
        XCTAssertTrue(why.stdout.contains("Failed:       "), why.stdout)
    }

    /// A running instance that never ended says so.
    func testNoExitYet() throws {
        let svc = service("calm")
        try startBusDaemon("""
            [services.\(svc)]
            command = ["sleep", "100000"]
            instances = 2

            [services.\(svc)-idle]
            command = ["sleep", "100000"]
            autostart = false
            """)
        try requireService(svc, running: 2)
        let idle = try ringctl(["why", "\(svc)-idle.0"])
        XCTAssertEqual(idle.status, 0, idle.stderr)
        XCTAssertEqual(idle.stdout, "\(svc)-idle.0: stopped; 0 restarts\nNo process of it has ended since ringmasterd started.\n"
                       + "Limits:       none\n")
        let r = try ringctl(["why", svc])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("(of 2 instances; none has ended): running, pid "), r.stdout)
        XCTAssertTrue(r.stdout.contains("It has not ended since ringmasterd started it."), r.stdout)
    }
}
