// The working-set trim (docs/architecture.md, "Memory"): once the daemon has been quiet for
// RINGMASTER_TRIM_DELAY_MS, the executable's clean pages leave its RSS; everything still works
// afterwards, and each quiet period after activity gets exactly one more trim.
import Foundation
import Glibc
import XCTest

final class WorkingSetTrimTests: DBusTestCase {
    /// Short, so the test is quick; long enough that reading smaps right after start-up comes
    /// well before the first trim.
    static let delayMS = 1500
    var delay: TimeInterval { TimeInterval(Self.delayMS) / 1000 }

    func testTextIsDroppedWhenQuietAndEverythingWorksAfterwards() throws {
        let sleeper = service("sleeper"), extra = service("extra")
        let config = """
            [services.\(sleeper)]
            command = ["sleep", "100000"]
            instances = 3
            restart-delay = "0"
            """
        let daemon = try startBusDaemon(config, environment: ["RINGMASTER_TRIM_DELAY_MS": String(Self.delayMS)])
        let started = try textKiB(of: daemon.pid)
        XCTAssertEqual(try trims(daemon).count, 0,
                       "a trim came before smaps was read after start-up: this machine stalled for \(delay) s")
        XCTAssertGreaterThan(started, 256, "start-up faults in a good part of the text")

        // Quiet: the first trim, and the text leaves the RSS.
        try requireTrims(1, daemon)
        let trimmed = try textKiB(of: daemon.pid)
        XCTAssertLessThan(trimmed, started / 3, "text RSS after the trim (KiB), against \(started) KiB after start-up")
        let dropped = try XCTUnwrap(try trims(daemon).first.flatMap(droppedKiB))
        XCTAssertGreaterThan(dropped, started / 2, "the daemon's own figure of what it dropped")
        figure("working-set trim", "ringmasterd text RSS after start-up → after the trim",
               "\(started) → \(trimmed) KiB (it dropped \(dropped) KiB)")

        // Everything still works: status, a reload that adds a service, a killed child restarted.
        var r = try ringctl(["status"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(sleeper), r.stdout)
        try writeConfig(config + """

            [services.\(extra)]
            command = ["sleep", "100000"]
            """)
        r = try ringctl(["reload"])
        XCTAssertEqual(r.status, 0, r.stderr)
        _ = try requireInstances(1, of: extra, daemon: daemon)
        let victim = try XCTUnwrap(try requireInstances(3, of: sleeper, daemon: daemon)[0]).pid
        kill(victim, SIGKILL)
        try require("instance 0 of \(sleeper) restarted", timeout: 10) {
            guard let p = self.instances(of: sleeper, daemon: daemon)[0] else { return false }
            return p.pid != victim
        }
        r = try ringctl(["status"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(sleeper) && r.stdout.contains(extra), r.stdout)
        try requireService(sleeper, running: 3)
        try requireService(extra, running: 1)

        // The activity pushed the trim back; once quiet again, one more trim, then none: the
        // timer is not periodic.
        let before = try trims(daemon).count
        try requireTrims(before + 1, daemon)
        XCTAssertLessThan(try textKiB(of: daemon.pid), started / 3, "text RSS after the next trim (KiB)")
        let another = try waitUntil(timeout: 2.5 * delay, poll: 0.1) { try self.trims(daemon).count > before + 1 }
        XCTAssertFalse(another, "a trim without activity in between: \((try? trims(daemon).messages) ?? [])")
        XCTAssertLessThan(try textKiB(of: daemon.pid), started / 3, "idling faults the text back in")
        XCTAssertTrue(daemon.isRunning)
    }

    func testZeroTurnsTrimmingOff() throws {
        let sleeper = service("sleeper")
        let daemon = try startBusDaemon("""
            [services.\(sleeper)]
            command = ["sleep", "100000"]
            """, environment: ["RINGMASTER_TRIM_DELAY_MS": "0"])
        let started = try textKiB(of: daemon.pid)
        // Quiet for longer than a trim delay of 1.5 s would need: no trim comes.
        let trimmed = try waitUntil(timeout: 2.5, poll: 0.1) { try !self.trims(daemon).isEmpty }
        XCTAssertFalse(trimmed, "trimmed although RINGMASTER_TRIM_DELAY_MS=0: \((try? trims(daemon).messages) ?? [])")
        XCTAssertGreaterThan(try textKiB(of: daemon.pid), started / 2)
        // and the setting is the daemon's own: its children do not see it
        let child = try XCTUnwrap(try requireInstances(1, of: sleeper, daemon: daemon)[0])
        let environ = try String(contentsOfFile: "/proc/\(child.pid)/environ", encoding: .utf8)
        XCTAssertFalse(environ.contains("RINGMASTER_TRIM_DELAY_MS"), environ)
    }

    // MARK: -

    /// The resident KiB of the executable's own text (its mappings with x), from /proc/PID/smaps.
    private func textKiB(of pid: Int32) throws -> Int {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        var total = 0, inText = false
        for line in try String(contentsOfFile: "/proc/\(pid)/smaps", encoding: .utf8).split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = words.first, !first.hasSuffix(":"), first.contains("-"), words.count >= 5 {
                let path = words.count > 5 ? words[5...].joined(separator: " ") : ""
                inText = path == exe && words[1].contains("x")
            } else if inText, words.first == "Rss:", words.count >= 2, let kib = Int(words[1]) {
                total += kib
            }
        }
        return total
    }

    private func trims(_ daemon: Daemon) throws -> [JournalEntry] { try daemon.journal().event("trim") }

    private func requireTrims(_ count: Int, _ daemon: Daemon) throws {
        try require("trim \(count) in ringmasterd's journal", timeout: 4 * delay + 5, poll: 0.1) {
            try self.trims(daemon).count >= count
        }
        let messages = try trims(daemon).messages
        XCTAssertEqual(messages.count, count, messages.joined(separator: "\n"))
        XCTAssertTrue(messages.last?.hasPrefix("trim \(count) after \(Self.delayMS) ms quiet: dropping ") == true,
                      messages.last ?? "")
    }

    /// "trim 1 after 1500 ms quiet: dropping 3712 KiB (…" → 3712
    private func droppedKiB(_ entry: JournalEntry) -> Int? {
        guard let message = entry["MESSAGE"], let range = message.range(of: "dropping ") else { return nil }
        return Int(message[range.upperBound...].prefix { $0.isNumber })
    }
}
