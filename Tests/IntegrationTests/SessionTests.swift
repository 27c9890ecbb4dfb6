// The private systemd user session itself (scripts/systemd-session): every other test
// relies on what these check.
import Foundation
import XCTest

final class SessionTests: IntegrationTestCase {
    /// The harness itself must not leak fds: hundreds of commands run in one test process.
    func testRunningCommandsLeaksNoFileDescriptor() throws {
        func openFDs() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
        try runCommand(["true"])
        let before = openFDs()
        for _ in 0..<20 { try runCommand(["true"]) }
        XCTAssertEqual(openFDs(), before)
    }

    func testUserManagerIsRunning() throws {
        let r = try runCommand(["systemctl", "--user", "is-system-running"])
        let state = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(state == "running" || state == "degraded", "systemctl --user is-system-running: \(state) \(r.stderr)")
    }

    func testUserBusAnswers() throws {
        let r = try runCommand(["busctl", "--user", "--no-pager", "list"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("org.freedesktop.systemd1"), r.stdout)
    }

    /// A transient unit's output lands in the journal, with its identifier, its own _PID and
    /// its user unit (journald reads that from the cgroup path the session gives the manager).
    func testTransientUnitOutputIsInTheJournal() throws {
        let unit = "rm-test-\(prefix)-echo"
        let marker = "\(prefix)-hello"
        // It stays up: journald reads a sender's cgroup lazily, and a process already gone
        // would leave the entry without its _SYSTEMD_* fields.
        let r = try runCommand(["systemd-run", "--user", "--quiet", "--unit=\(unit)", "--property=Type=exec",
                         "--property=SyslogIdentifier=\(service("echo"))",
                         "/bin/sh", "-c", "echo \(marker) pid=$$$$; exec sleep 60"])   // systemd makes $$ of $$$$
        XCTAssertEqual(r.status, 0, r.stderr)
        defer { _ = try? runCommand(["systemctl", "--user", "stop", unit]) }
        let entry = try requireJournal("\(marker) in the journal", { try Journal.lines(identifier: self.service("echo")) }) {
            $0["MESSAGE"]?.hasPrefix(marker) == true
        }
        XCTAssertEqual(entry["_PID"], keyValues(entry["MESSAGE"] ?? "")["pid"], "\(entry)")
        XCTAssertEqual(entry["_SYSTEMD_USER_UNIT"], unit + ".service")
        XCTAssertEqual(entry["PRIORITY"], "6")
        let byUnit = try Journal.entries(["--user-unit", unit]).messages
        XCTAssertTrue(byUnit.contains(entry["MESSAGE"] ?? "-"), "journalctl --user-unit \(unit): \(byUnit)")
    }

    /// No rate limit (BENCH-NOTES: the default drops lines): 20k lines in a burst all arrive.
    func testJournalHasNoRateLimit() throws {
        let count = 20_000
        let id = service("burst")
        let r = try runCommand(["systemd-run", "--user", "--quiet", "--unit=rm-test-\(prefix)-burst", "--property=Type=exec",
                         "--property=SyslogIdentifier=\(id)", "/bin/sh", "-c", "seq 1 \(count)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lastLine = try requireJournal("line \(count) of \(id)", timeout: 30, { try Journal.entries(["-t", id, "-n", "1"]) }) {
            $0["MESSAGE"] == String(count)
        }
        XCTAssertNotNil(lastLine)
        let all = try runCommand(["journalctl", "--no-pager", "-o", "cat", "-t", id])
        XCTAssertEqual(all.stdout.split(separator: "\n").count, count)
    }
}
