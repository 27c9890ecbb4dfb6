// The slow half of the fault suite (docs/reliability.md): `make faults` runs it, `make check`
// skips it by name (`--skip FaultSlowTests`). A child writing 1 GiB as fast as it can, with
// the daemon out of the data path (journal) and in it (console); and a 5,000-service config
// loaded by the daemon itself, then stopped.
import Foundation
import Glibc
import TestSupport
import XCTest

final class FaultSlowTests: IntegrationTestCase {
    static let floodBytes = 1 << 30

    /// 1 GiB of 1 KiB lines in 64 KiB writes, then exit.
    private var floodCommand: String {
        let program = """
            import sys
            chunk = (b"x" * 1023 + b"\\n") * 64
            for _ in range(\(Self.floodBytes / 65_536)):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            """
        return "[\"python3\", \"-c\", \(TOML.string(program))]"
    }

    /// `seq 1`, `seq 2`, … every 2 ms until the file `stop` exists, then `done N`, and exit.
    private var numberedCommand: String {
        let program = """
            import os, time
            i = 0
            while not os.path.exists("stop"):
                i += 1
                print("seq %d" % i, flush=True)
                time.sleep(0.002)
            print("done %d" % i, flush=True)
            """
        return "[\"python3\", \"-c\", \(TOML.string(program))]"
    }

    private func floodConfig(flood: String, other: String) -> String {
        """
        [services.\(flood)]
        command = \(floodCommand)
        restart = "never"

        [services.\(other)]
        command = \(numberedCommand)
        working-directory = \(TOML.string(dir))
        restart = "never"
        """
    }

    /// While the flood runs: `ringctl status` every 100 ms, timed, and the daemon's RSS.
    private func watchFlood(floodPID: Int32, daemonPID: Int32, timeout: TimeInterval) throws
        -> (status: Latencies, failures: Int, maxRSSKiB: Int, seconds: Double) {
        let ringctl = try Binaries.ringctl()
        var latencies = Latencies()
        var failures = 0, maxRSS = 0
        let started = Date()
        while Processes.isAlive(floodPID) {
            guard Date().timeIntervalSince(started) < timeout else { throw HarnessError("the flood still runs after \(timeout)s") }
            let r = try timedRun([ringctl, "status"])
            latencies.add(r.seconds)
            if r.status != 0 { failures += 1 }
            maxRSS = max(maxRSS, ProcSample.of(daemonPID)?.rssKiB ?? 0)
            _ = waitUntil(timeout: 0.1, poll: 0.01) { !Processes.isAlive(floodPID) }
        }
        return (latencies, failures, maxRSS, Date().timeIntervalSince(started))
    }

    /// The numbered lines as written: `seq 1` … `seq N`, `done N`.
    private func assertNumbered(_ lines: [String], file: StaticString = #filePath, line: UInt = #line) -> Int {
        guard let last = lines.last, last.hasPrefix("done "), let n = Int(last.dropFirst(5)) else {
            XCTFail("the numbered service's last line is not `done N`: \(lines.suffix(3))", file: file, line: line)
            return 0
        }
        let expected = (1...max(n, 1)).map { "seq \($0)" } + [last]
        if lines != expected {
            let missing = Set(expected).subtracting(lines)
            XCTFail("numbered lines lost, repeated or reordered: \(lines.count) lines for \(n + 1); "
                    + "missing e.g. \(missing.sorted().prefix(5))", file: file, line: line)
        }
        return n
    }

    // MARK: log flood, journal

    /// Journal mode: the child's stdout is its own journald stream, so 1 GiB goes past the
    /// daemon. Its RSS must grow < 1 MiB, `ringctl status` answer in < 50 ms throughout, and
    /// every line of a second service arrive, as must every line of the flood.
    func testLogFloodIntoTheJournalLeavesTheDaemonFlatAndAnswering() throws {
        let flood = service("flood"), other = service("numbered")
        // The working-set trim off: RSS is compared before and after, and a trim in between
        // (the daemon is idle in journal mode) would hide growth or fake it.
        let daemon = try startDaemon(floodConfig(flood: flood, other: other), mode: .journal,
                                     environment: ["RINGMASTER_TRIM_DELAY_MS": "0"])
        let floodPID = try requireInstances(1, of: flood, daemon: daemon)[0]!.pid
        _ = try requireInstances(1, of: other, daemon: daemon)
        let before = try ProcSample.require(daemon.pid)

        let watched = try watchFlood(floodPID: floodPID, daemonPID: daemon.pid, timeout: 300)
        let after = try ProcSample.require(daemon.pid)
        _ = FileManager.default.createFile(atPath: dir + "/stop", contents: nil)
        try require("\(other) to finish", timeout: 10) { self.instances(of: other, daemon: daemon).isEmpty }

        // Every line of both services is in the journal.
        let numbered = try require("`done N` from \(other) in the journal", timeout: 30, poll: 0.2) { () -> [String]? in
            let lines = try Journal.lines(identifier: other).compactMap { $0["MESSAGE"] }
            return lines.last?.hasPrefix("done ") == true ? lines : nil
        }
        let n = assertNumbered(numbered)
        let expectedFloodLines = Self.floodBytes / 1024
        var floodLines = 0
        _ = try waitUntil(timeout: 120, poll: 1) { () -> Bool in
            let r = try runCommand(["/bin/sh", "-c", "journalctl --no-pager -q -o cat -t \(flood) | wc -l"], timeout: 120)
            floodLines = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            return floodLines >= expectedFloodLines
        }
        XCTAssertEqual(floodLines, expectedFloodLines, "flood lines in the journal")

        let growth = after.peakRSSKiB - before.rssKiB
        XCTAssertLessThan(growth, 1024, "daemon RSS grew \(growth) KiB during the flood")
        XCTAssertEqual(watched.failures, 0, "ringctl status failed during the flood")
        XCTAssertGreaterThan(watched.status.count, 10)
        XCTAssertLessThan(watched.status.max, 0.050, "ringctl status took up to \(watched.status.max * 1000) ms during the flood")

        let f = "log flood, journal"
        figure(f, "binary", binaryFlavour)
        figure(f, "1 GiB written in", String(format: "%.1f s (%.0f MiB/s; journald is the limit)", watched.seconds, 1024 / watched.seconds))
        figure(f, "daemon RSS before / peak after", "\(mib(before.rssKiB)) / \(mib(after.peakRSSKiB)) (growth \(growth) KiB; limit 1 MiB)")
        figure(f, "daemon CPU during the flood", String(format: "%.2f s (the ringctl status calls included)", after.cpuSeconds(since: before)))
        figure(f, "ringctl status during the flood", watched.status.summary + " (limit 50 ms)")
        figure(f, "lines", "\(floodLines) of \(expectedFloodLines) flood lines, \(n) of \(n) numbered lines, in order")
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    // MARK: log flood, console

    /// Console mode: the daemon copies each line from the child's pipe to its own stderr, so
    /// the whole 1 GiB goes through it (here into a reader counting the lines). Same limits.
    func testLogFloodOnTheConsoleGoesThroughTheDaemonWithoutGrowingIt() throws {
        let flood = service("flood"), other = service("numbered")
        let path = try writeConfig(floodConfig(flood: flood, other: other))
        let daemon = try ConsolePipeDaemon(configPath: path, directory: dir, floodPrefix: "\(flood).0 | ")
        defer { daemon.stop() }
        let floodPID = try requireInstances(1, of: flood, parent: daemon.pid)[0]!.pid
        _ = try requireInstances(1, of: other, parent: daemon.pid)
        let before = try ProcSample.require(daemon.pid)

        let watched = try watchFlood(floodPID: floodPID, daemonPID: daemon.pid, timeout: 300)
        let after = try ProcSample.require(daemon.pid)
        _ = FileManager.default.createFile(atPath: dir + "/stop", contents: nil)
        try require("\(other) to finish", timeout: 10) { Processes.of(service: other).isEmpty }
        try require("`done N` from \(other) on the daemon's stderr (its last lines: \(daemon.otherLines().suffix(3)))", timeout: 10) {
            daemon.otherLines().contains { $0.hasPrefix("\(other).0 | done ") }
        }
        daemon.stop()
        let summary = try daemon.summary()

        let prefix = "\(other).0 | "
        let numbered = daemon.otherLines().filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        let n = assertNumbered(numbered)
        let expectedFloodLines = Self.floodBytes / 1024
        XCTAssertEqual(summary.floodLines, expectedFloodLines, "flood lines on the daemon's stderr")
        XCTAssertEqual(summary.floodBytes, expectedFloodLines * ("\(flood).0 | ".utf8.count + 1024), "flood bytes on the daemon's stderr")

        let growth = after.peakRSSKiB - before.rssKiB
        XCTAssertLessThan(growth, 1024, "daemon RSS grew \(growth) KiB during the flood")
        XCTAssertEqual(watched.failures, 0)
        XCTAssertGreaterThan(watched.status.count, 3)
        XCTAssertLessThan(watched.status.max, 0.050, "ringctl status took up to \(watched.status.max * 1000) ms during the flood")

        let f = "log flood, console"
        let cpu = after.cpuSeconds(since: before)
        figure(f, "binary", binaryFlavour)
        figure(f, "1 GiB through the daemon in", String(format: "%.1f s (%.0f MiB/s)", watched.seconds, 1024 / watched.seconds))
        figure(f, "daemon CPU for it", String(format: "%.2f s (%.2f s per GiB; status calls included)", cpu, cpu))
        figure(f, "daemon RSS before / peak after", "\(mib(before.rssKiB)) / \(mib(after.peakRSSKiB)) (growth \(growth) KiB; limit 1 MiB)")
        figure(f, "ringctl status during the flood", watched.status.summary + " (limit 50 ms)")
        figure(f, "lines", "\(summary.floodLines) of \(expectedFloodLines) flood lines, \(n) of \(n) numbered lines, in order")
    }

    // MARK: console output nobody reads

    /// Console mode, and whatever reads the daemon's stderr stops reading (a paused `less`, a
    /// stuck terminal, a full pipe): the daemon may hold back its children's output, but its
    /// loop must go on — D-Bus answered, a killed child reaped and replaced.
    func testConsoleOutputThatNobodyReadsDoesNotStallTheLoop() throws {
        let chatty = service("chatty"), sleeper = service("sleeper")
        let path = try writeConfig("""
            [services.\(chatty)]
            command = ["python3", "-c", "import sys, time\\nfor i in range(100000): print('line %d' % i, flush=True)\\ntime.sleep(100000)"]

            [services.\(sleeper)]
            command = ["sleep", "100000"]
            restart-delay = "10ms"
            """)
        let daemon = try ConsolePipeDaemon(configPath: path, directory: dir, floodPrefix: nil)
        defer { daemon.stop() }
        let chattyPID = try requireInstances(1, of: chatty, parent: daemon.pid)[0]!.pid
        let sleeperPID = try requireInstances(1, of: sleeper, parent: daemon.pid)[0]!.pid
        // Everything between the chatty child and the unread pipe is full: it blocks writing.
        try require("\(chatty) blocked writing its output", timeout: 10, poll: 0.05) {
            (contents("/proc/\(chattyPID)/wchan") ?? "").contains("pipe_write")
        }

        let status = try timedRun(["timeout", "5", try Binaries.ringctl(), "status"])
        XCTAssertEqual(status.status, 0, "ringctl status got no answer (\(status.status == 124 ? "timed out after 5 s" : "exit \(status.status)"))")
        XCTAssertEqual(kill(sleeperPID, SIGKILL), 0)
        let replaced = waitUntil(timeout: 5) {
            self.instances(of: sleeper, parent: daemon.pid)[0].map { $0.pid != sleeperPID } ?? false
        }
        XCTAssertTrue(replaced, "the killed \(sleeper) was not replaced")
        XCTAssertEqual(ProcTable.zombies(of: daemon.pid), [], "unreaped children of ringmasterd")
        let wchan = contents("/proc/\(daemon.pid)/wchan") ?? "?"
        figure("console output nobody reads", "ringctl status", status.status == 0 ? String(format: "answered in %.0f ms", status.seconds * 1000)
                                                                                  : "no answer in 5 s (daemon blocked in \(wchan)): FAIL")
        figure("console output nobody reads", "killed child replaced", replaced ? "yes" : "no, left a zombie: FAIL")
    }

    // MARK: 5,000 services in the daemon

    /// The 5,000-service file of FaultTests (ConfigSamples), loaded by ringmasterd itself: on the bus and
    /// `running` (every service stopped: autostart = false) within a second, and gone again
    /// within a few seconds of SIGTERM.
    func testFiveThousandServicesLoadInTheDaemonAndStopAgain() throws {
        let port = try freePort()
        let launched = Date()
        let daemon = try startDaemon(ConfigSamples.fiveThousandServices(port: port), mode: .journal)
        try require("ringmasterd on the bus, running", timeout: 60, poll: 0.02) {
            guard daemon.isRunning else { throw HarnessError("ringmasterd exited: \(daemon.log())") }
            let r = try runCommand(["busctl", "--user", "get-property", API.name, API.managerPath, API.manager, "State"])
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "s \"running\""
        }
        let ready = Date().timeIntervalSince(launched)
        let loaded = try ProcSample.require(daemon.pid)
        let status = try timedRun([try Binaries.ringctl(), "status", "svc-4999"])
        XCTAssertEqual(status.status, 3, "svc-4999 is stopped")
        XCTAssertLessThan(ready, 1.0 + 1.0, "from exec to running on the bus (1 s, + 1 s for process start-up and polling)")

        let sent = Date()
        daemon.signal(SIGTERM)
        let exit = daemon.waitForExit(timeout: 10)
        let took = Date().timeIntervalSince(sent)
        if exit == nil {
            let cpu = ProcSample.of(daemon.pid).map { $0.cpuSeconds(since: loaded) } ?? -1
            daemon.signal(SIGKILL)
            _ = daemon.waitForExit(timeout: 10)
            XCTFail(String(format: "ringmasterd still ran %.0f s after SIGTERM (busy: %.1f s of CPU), with no process to stop", took, cpu))
        } else {
            XCTAssertEqual(exit, 0)
        }

        figure("5,000-service config", "ringmasterd (\(binaryFlavour)): exec → running on the bus", String(format: "%.2f s", ready))
        figure("5,000-service config", "ringmasterd RSS with 5,000 services loaded", mib(loaded.rssKiB))
        figure("5,000-service config", "ringctl status svc-4999", String(format: "%.0f ms", status.seconds * 1000))
        figure("5,000-service config", "SIGTERM → exit", exit == nil ? String(format: "still running after %.0f s: FAIL", took)
                                                                   : String(format: "%.2f s", took))
    }
}

/// ringmasterd in console mode with its stdout and stderr into a pipe, read by a small
/// counter that keeps every line but the flood's (whose lines and bytes it only counts) —
/// or, with `floodPrefix` nil, read by nobody: the pipe fills up and stays full, as behind a
/// paused `less` or a stuck terminal.
private final class ConsolePipeDaemon {
    let pid: Int32
    private let daemon = Process()
    private let reader = Process()
    /// the read end, held unread (no reader)
    private var unread: FileHandle?
    private let linesPath: String, summaryPath: String

    static let readerScript = """
        import sys
        prefix, keep, summary = sys.argv[1].encode(), open(sys.argv[2], "wb", buffering=0), sys.argv[3]
        lines = size = 0
        tail = b""
        src = sys.stdin.buffer.raw
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            buf = tail + chunk
            cut = buf.rfind(b"\\n") + 1
            whole, tail = buf[:cut], buf[cut:]
            n = whole.count(b"\\n" + prefix) + (1 if whole.startswith(prefix) else 0)
            lines += n
            if whole.count(b"\\n") != n:
                for line in whole.split(b"\\n")[:-1]:
                    if line.startswith(prefix):
                        continue
                    keep.write(line + b"\\n")
            size += len(whole)
        if tail:
            keep.write(tail + b"\\n")
        with open(summary, "w") as f:
            f.write("%d %d\\n" % (lines, size))
        """

    init(configPath: String, directory: String, floodPrefix: String?) throws {
        linesPath = directory + "/console.lines"
        summaryPath = directory + "/console.summary"
        let script = directory + "/console-reader.py"
        try Self.readerScript.write(toFile: script, atomically: true, encoding: .utf8)
        let pipe = Pipe()
        if let floodPrefix {
            reader.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            reader.arguments = ["python3", script, floodPrefix, linesPath, summaryPath]
            reader.standardInput = pipe.fileHandleForReading
            reader.standardOutput = FileHandle.nullDevice
            try reader.run()
        }

        daemon.executableURL = URL(fileURLWithPath: try Binaries.ringmasterd())
        daemon.arguments = ["--config", configPath, "--log-target", "console"]
        daemon.environment = Daemon.environment(["RINGMASTER_TRIM_DELAY_MS": "0"]) // as in the journal flood
        daemon.currentDirectoryURL = URL(fileURLWithPath: directory)
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = pipe.fileHandleForWriting
        daemon.standardError = pipe.fileHandleForWriting
        do {
            try daemon.run()
        } catch {
            try? pipe.fileHandleForWriting.close()
            if floodPrefix != nil { reader.waitUntilExit() }
            throw error
        }
        // Only the two processes hold the pipe now: the reader sees EOF when the daemon exits.
        try? pipe.fileHandleForWriting.close()
        if floodPrefix != nil { try? pipe.fileHandleForReading.close() } else { unread = pipe.fileHandleForReading }
        pid = daemon.processIdentifier
    }

    /// SIGTERM (SIGKILL after 20 s), then the reader's end of input. Without a reader, the
    /// read end is closed first: a daemon stuck writing to the full pipe gets EPIPE.
    func stop() {
        if let unread {
            try? unread.close()
            self.unread = nil
        }
        if daemon.isRunning {
            kill(pid, SIGTERM)
            if !waitUntil(timeout: 20, { !self.daemon.isRunning }) { kill(pid, SIGKILL) }
            daemon.waitUntilExit()
        }
        guard reader.executableURL != nil else { return }
        if !waitUntil(timeout: 30, { !self.reader.isRunning }) { reader.terminate() }
        reader.waitUntilExit()
    }

    /// Every line of the daemon's output but the flood's, so far.
    func otherLines() -> [String] {
        ((try? String(contentsOfFile: linesPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The flood's lines and the bytes of output read in all (after `stop`).
    func summary() throws -> (floodLines: Int, floodBytes: Int) {
        guard let words = contents(summaryPath)?.split(separator: " "), words.count == 2,
              let lines = Int(words[0]), let bytes = Int(words[1]) else {
            throw HarnessError("the console reader left no summary")
        }
        let others = otherLines().reduce(0) { $0 + $1.utf8.count + 1 }
        return (lines, bytes - others)
    }
}
