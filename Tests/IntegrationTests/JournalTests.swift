// Logs in journal mode: each child's output is its own journald stream (identifier = the
// service name, _PID = the child, <N> prefixes honoured); the daemon's own events carry the
// RINGMASTER_* fields.
import Foundation
import Glibc
import XCTest

final class JournalTests: IntegrationTestCase {
    func testChildLinesAndDaemonEvents() throws {
        let svc = service("talker")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "echo hello from $$; echo '<3>boom'; echo '<7>details'; echo to-stderr >&2; echo last words; exit 3"]
            restart = "never"
            """, mode: .journal)

        let spawned = try requireJournal("the spawned event of \(svc)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "spawned"
        }
        let pid = try XCTUnwrap(spawned["RINGMASTER_PID"])
        XCTAssertEqual(spawned["RINGMASTER_INSTANCE"], "0")
        XCTAssertEqual(spawned["_PID"], String(daemon.pid), "the daemon's own entries come from the daemon")

        let exited = try requireJournal("the exited event of \(svc)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "exited"
        }
        XCTAssertEqual(exited["RINGMASTER_PID"], pid)
        XCTAssertEqual(exited["RINGMASTER_INSTANCE"], "0")
        XCTAssertEqual(exited["RINGMASTER_EXIT_CODE"], "exited")
        XCTAssertEqual(exited["RINGMASTER_EXIT_STATUS"], "3")
        XCTAssertEqual(exited["RINGMASTER_EXIT_REASON"], "exit-code")

        // The child's lines: under its service name, from its own pid; the last ones before it died too.
        let lines = try require("the last line of \(svc) in the journal") { () -> [JournalEntry]? in
            let lines = try Journal.lines(identifier: svc)
            return lines.messages.contains("last words") ? lines : nil
        }
        for line in lines {
            XCTAssertEqual(line["_PID"], pid, "\(line["MESSAGE"] ?? ""): journald must see the child's own pid")
            XCTAssertEqual(line["_TRANSPORT"], "stdout")
        }
        func entry(_ message: String) -> JournalEntry? { lines.first { $0["MESSAGE"] == message } }
        XCTAssertEqual(entry("hello from \(pid)")?["PRIORITY"], "6")
        XCTAssertEqual(entry("boom")?["PRIORITY"], "3", "<3> prefix: \(lines.messages)")
        XCTAssertEqual(entry("details")?["PRIORITY"], "7", "<7> prefix: \(lines.messages)")
        XCTAssertNotNil(entry("to-stderr"), "stderr goes to the journal too: \(lines.messages)")
        XCTAssertNotNil(entry("last words"))
        XCTAssertEqual(lines.messages.filter { $0.hasPrefix("<") }, [], "a level prefix was left in a message")

        // The children's stdout is not the daemon's stderr in journal mode.
        XCTAssertFalse(daemon.stderr.contains("last words"), daemon.stderr)
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    func testDumpedAndKilledExitCodes() throws {
        let svc = service("crasher")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "ulimit -c unlimited 2>/dev/null; kill -SEGV $$"]
            restart = "never"
            """, mode: .journal)
        let exited = try requireJournal("the exited event of \(svc)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "exited"
        }
        XCTAssertEqual(exited["RINGMASTER_EXIT_STATUS"], String(SIGSEGV))
        // "dumped" when a core was written (a core limit > 0 and a core_pattern that took it).
        XCTAssertTrue(["dumped", "killed"].contains(exited["RINGMASTER_EXIT_CODE"] ?? ""), "\(exited)")
        XCTAssertEqual(exited["RINGMASTER_EXIT_REASON"], exited["RINGMASTER_EXIT_CODE"] == "dumped" ? "core-dump" : "signal")
        if FileManager.default.fileExists(atPath: dir + "/core") {
            XCTAssertEqual(exited["RINGMASTER_EXIT_CODE"], "dumped")
        }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// Run by the user manager (as ringmaster.service is), `--log-target auto` finds its stderr
    /// is a journal stream and logs to the journal.
    func testAutoLogTargetUnderSystemdIsTheJournal() throws {
        let svc = service("unit")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "echo unit child $$; exec sleep 1000"]
            """, mode: .unit)
        let spawned = try requireJournal("the spawned event of \(svc)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "spawned"
        }
        XCTAssertEqual(spawned["_SYSTEMD_USER_UNIT"], daemon.unit)
        let pid = try XCTUnwrap(spawned["RINGMASTER_PID"])
        let line = try requireJournal("the child's line", { try Journal.lines(identifier: svc) }) {
            $0["MESSAGE"] == "unit child \(pid)"
        }
        XCTAssertEqual(line["_PID"], pid)
        XCTAssertEqual(line["_SYSTEMD_USER_UNIT"], daemon.unit, "the child runs in the daemon's unit")
        // Not on the console: nothing prefixed "svc.0 | " went to the daemon's stderr stream.
        let consoleLines = try Journal.entries(["_SYSTEMD_USER_UNIT=\(daemon.unit!)"]).messages.filter { $0.hasPrefix("\(svc).0 | ") }
        XCTAssertEqual(consoleLines, [])

        try runCommand(["systemctl", "--user", "stop", daemon.unit!], timeout: 30)
        XCTAssertEqual(daemon.waitForExit(timeout: 10), 0, "ringmasterd's exit status under systemctl stop")
        XCTAssertEqual(try daemon.unitProperty("Result"), "success")
    }
}
