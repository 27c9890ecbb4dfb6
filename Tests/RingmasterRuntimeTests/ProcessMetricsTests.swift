import Glibc
import XCTest
@testable import RingmasterRuntime

final class ProcessMetricsTests: XCTestCase {
    /// A shell with two sleeping children: with descendants, three processes are measured.
    func testDescendantsAreFoundFromTheMainProcess() throws {
        let parent = try PosixSpawner().spawn(sh("sleep 30 & sleep 30 & echo started; wait"))
        defer {
            _ = kill(-parent.pid, SIGKILL)
            var info = siginfo_t()
            _ = waitid(P_PID, id_t(parent.pid), &info, WEXITED)
            close(parent.pidfd)
        }
        var children: [Int32] = []
        let deadline = monotonicNow() + 5_000_000
        // Both children exec'd (not forked shells any more): their memory is then steady.
        func isSleep(_ pid: Int32) -> Bool { readSmallFile("/proc/\(pid)/comm") == "sleep\n" }
        while monotonicNow() < deadline {
            children = ProcessMetrics.children(of: parent.pid)
            if children.count == 2 && children.allSatisfy(isSleep) { break }
            _ = poll(nil, 0, 10)
        }
        XCTAssertEqual(children.count, 2, "the two sleeps")
        let alone = ProcessMetrics.of(pids: [parent.pid], descendants: false)
        let all = ProcessMetrics.of(pids: [parent.pid], descendants: true)
        let each = children.map { ProcessMetrics.of(pids: [$0], descendants: false).memoryBytes }
        // (RSS moves a little between reads: compare with a margin.)
        XCTAssertGreaterThan(alone.memoryBytes, 0)
        XCTAssertGreaterThan(all.memoryBytes, (alone.memoryBytes + each.reduce(0, +)) * 9 / 10)
        XCTAssertLessThan(all.memoryBytes, (alone.memoryBytes + each.reduce(0, +)) * 11 / 10)
        let twice = ProcessMetrics.of(pids: [parent.pid, parent.pid], descendants: false)
        XCTAssertLessThan(twice.memoryBytes, alone.memoryBytes * 3 / 2, "a pid counts once")
    }

    func testGoneProcessesCountNothing() {
        XCTAssertEqual(ProcessMetrics.of(pids: [Int32.max - 1], descendants: true), ProcessMetrics())
    }

    func testStatParsing() {
        // comm with spaces and parentheses; cutime negative (counts 0); rss is field 24.
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 -2 5 20 0 1 0 99 10485760 321 "
            + "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        let parsed = ProcessMetrics.parseStat(Array(stat.utf8))
        XCTAssertEqual(parsed?.cpuTicks, 7 + 3 + 0 + 5)
        XCTAssertEqual(parsed?.rssPages, 321)
        XCTAssertNil(ProcessMetrics.parseStat(Array("1234 (x) S 1 2 3".utf8)), "too short")
        XCTAssertNil(ProcessMetrics.parseStat(Array("garbage".utf8)))
        // The real thing: this process.
        let own = readSmallFileBytes("/proc/self/stat").flatMap(ProcessMetrics.parseStat)
        XCTAssertGreaterThan(own?.rssPages ?? 0, 0)
    }

    func testPIDLists() {
        XCTAssertEqual(pidList(Array("12\n345\n".utf8)), [12, 345])
        XCTAssertEqual(pidList(Array("7 8 9 ".utf8)), [7, 8, 9])
        XCTAssertEqual(pidList(Array("".utf8)), [])
        XCTAssertEqual(pidList(Array("99999999999".utf8)), [Int32.max], "overflow saturates, never traps")
    }
}
