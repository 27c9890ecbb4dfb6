// Supervision: a killed instance is replaced; a service that keeps failing is given up on
// after its start limit, with the reason.
import Foundation
import Glibc
import XCTest

final class RestartTests: IntegrationTestCase {
    func testKilledInstanceIsReplaced() throws {
        let svc = service("worker")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["sleep", "1000"]
            instances = 3
            restart-delay = "10ms"
            """, mode: .journal)
        let before = try requireInstances(3, of: svc, daemon: daemon)
        let victim = before[1]!
        XCTAssertEqual(kill(victim.pid, SIGKILL), 0)

        let replacement = try require("a new process for \(svc).1") { () -> ProcessInfoEntry? in
            guard let p = self.instances(of: svc, daemon: daemon)[1], p.pid != victim.pid else { return nil }
            return p
        }
        XCTAssertEqual(replacement.environment["RINGMASTER_INSTANCE"], "1")
        let after = instances(of: svc, daemon: daemon)
        XCTAssertEqual(after[0]?.pid, before[0]?.pid, "instance 0 must not be touched")
        XCTAssertEqual(after[2]?.pid, before[2]?.pid, "instance 2 must not be touched")

        // The daemon's journal entries tell the story, with their fields.
        let exited = try requireJournal("the exit of pid \(victim.pid)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "exited" && $0["RINGMASTER_PID"] == String(victim.pid)
        }
        XCTAssertEqual(exited["RINGMASTER_INSTANCE"], "1")
        XCTAssertEqual(exited["RINGMASTER_EXIT_CODE"], "killed")
        XCTAssertEqual(exited["RINGMASTER_EXIT_STATUS"], "9")
        try requireJournal("a spawned event for pid \(replacement.pid)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "spawned" && $0["RINGMASTER_PID"] == String(replacement.pid)
                && $0["RINGMASTER_INSTANCE"] == "1"
        }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    func testGivesUpAfterTheStartLimit() throws {
        let svc = service("crash")
        let starts = dir + "/starts"
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "echo $$ >> \(starts); exit 1"]
            start-limit = { count = 3, interval = "10s" }
            restart-delay = "10ms"
            """, mode: .journal)

        let gaveUp = try requireJournal("a gave-up event for \(svc)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "gave-up"
        }
        let reason = gaveUp["MESSAGE"] ?? ""
        XCTAssertTrue(reason.contains("start limit"), "the reason should name the start limit: \(reason)")
        XCTAssertTrue(reason.contains("status 1"), "the reason should name the last exit: \(reason)")
        XCTAssertEqual(gaveUp["PRIORITY"], "3")
        let failed = try requireJournal("\(svc) in state failed", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "state" && ($0["MESSAGE"] ?? "").contains("-> failed")
        }
        XCTAssertTrue((failed["MESSAGE"] ?? "").contains("start limit"), "failed state without its reason: \(failed)")

        // Stopping the daemon takes a loop turn or more: a 4th start would be in the file by then.
        XCTAssertEqual(try daemon.terminate(), 0)
        let lines = (contents(starts) ?? "").split(separator: "\n")
        XCTAssertEqual(lines.count, 3, "started \(lines.count) times, not 3: \(lines)")
        let spawned = try Journal.events(service: svc).event("spawned")
        XCTAssertEqual(spawned.compactMap { $0["RINGMASTER_PID"] }, lines.map(String.init))
        let exits = try Journal.events(service: svc).event("exited")
        XCTAssertEqual(exits.count, 3)
        for e in exits {
            XCTAssertEqual(e["RINGMASTER_EXIT_CODE"], "exited")
            XCTAssertEqual(e["RINGMASTER_EXIT_STATUS"], "1")
        }
    }

    /// The same on the console: the state change and the reason on the daemon's stderr.
    func testGivingUpIsReportedOnTheConsole() throws {
        let svc = service("crash")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["false"]
            start-limit = { count = 2, interval = "10s" }
            restart-delay = "10ms"
            """)
        try requireLog("-> failed", daemon: daemon)
        let failedLine = daemon.stderr.split(separator: "\n").first { $0.contains("\(svc): ") && $0.contains("-> failed") }
        XCTAssertTrue(failedLine?.contains("start limit") == true, "\(failedLine ?? "no line")")
        XCTAssertEqual(try daemon.terminate(), 0)
    }
}
