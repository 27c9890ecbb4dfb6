// What the fault suite (Fault*Tests, docs/reliability.md) measures a daemon with, from
// /proc, the way `top` or `ps` would: CPU time, memory, open fds, zombie children. And a
// spawner for timing short commands (`ringctl status`) without Foundation's polling.
//
// Every fault test prints its figures as `FIGURE <case>: <what> = <value>` lines, so a run
// of `make faults` shows the numbers docs/reliability.md quotes.
import Foundation
import Glibc
import XCTest

/// One process as /proc sees it at a moment.
struct ProcSample {
    /// utime + stime, in clock ticks (1/100 s on Linux)
    var cpuTicks: Int
    /// resident set, KiB (VmRSS)
    var rssKiB: Int
    /// the peak resident set since the process started, KiB (VmHWM)
    var peakRSSKiB: Int
    /// entries in /proc/PID/fd
    var openFDs: Int

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// nil once the process is gone.
    static func of(_ pid: Int32) -> ProcSample? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")"),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        // after "pid (comm)": field 3 (state) is rest[0], so field n is rest[n - 3]
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 13, let utime = Int(rest[14 - 3]), let stime = Int(rest[15 - 3]) else { return nil }
        func kib(_ key: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
                return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "") ?? 0
            }
            return 0
        }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
        return ProcSample(cpuTicks: utime + stime, rssKiB: kib("VmRSS"), peakRSSKiB: kib("VmHWM"), openFDs: fds)
    }

    static func require(_ pid: Int32) throws -> ProcSample {
        guard let s = of(pid) else { throw HarnessError("process \(pid) is gone") }
        return s
    }

    /// CPU seconds used between `earlier` and this sample.
    func cpuSeconds(since earlier: ProcSample) -> Double { Double(cpuTicks - earlier.cpuTicks) / Self.ticksPerSecond }
}

enum ProcTable {
    /// (pid, state) of every child of `parent`, zombies included (Processes.all() skips them).
    static func children(of parent: Int32) -> [(pid: Int32, state: Character)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [(Int32, Character)] = []
        for name in names {
            guard let pid = Int32(name),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let rest = stat[stat.index(after: close)...].split(separator: " ")
            guard rest.count > 1, let state = rest[0].first, Int32(rest[1]) == parent else { continue }
            out.append((pid, state))
        }
        return out
    }

    static func zombies(of parent: Int32) -> [Int32] { children(of: parent).filter { $0.state == "Z" }.map(\.pid) }
}

/// Runs `argv` (a path, or a name looked up in PATH) with stdout and stderr to /dev/null
/// (or to `output`), and returns its exit status and wall time: posix_spawn + waitpid, so
/// that the time is the command's own, not a polling interval.
@discardableResult
func timedRun(_ argv: [String], output: String = "/dev/null") throws -> (status: Int32, seconds: Double) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid: pid_t = 0
    let started = Date()
    let r = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
    guard r == 0 else { throw HarnessError("spawn \(argv[0]): \(String(cString: strerror(r)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw HarnessError("waitpid \(pid): \(String(cString: strerror(errno)))") }
    }
    let seconds = Date().timeIntervalSince(started)
    // WIFEXITED / WEXITSTATUS / WTERMSIG by hand (the macros do not reach Swift)
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, seconds)
}

/// Latencies, summarized as the docs quote them.
struct Latencies {
    private(set) var values: [Double] = []
    mutating func add(_ seconds: Double) { values.append(seconds) }
    var count: Int { values.count }
    var max: Double { values.max() ?? 0 }
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
    }
    var summary: String {
        String(format: "n=%d median=%.1f ms p90=%.1f ms max=%.1f ms", count, percentile(0.5) * 1000,
               percentile(0.9) * 1000, max * 1000)
    }
}

/// `FIGURE case: what = value`, the line docs/reliability.md quotes.
func figure(_ testCase: String, _ what: String, _ value: String) {
    print("FIGURE \(testCase): \(what) = \(value)")
}

func mib(_ kib: Int) -> String { String(format: "%.2f MiB", Double(kib) / 1024) }

/// Which build of ringmasterd the figures are of (make faults runs the release one).
var binaryFlavour: String {
    let dir = (try? Binaries.directory()) ?? "?"
    return dir.contains("/release") ? "release" : (dir.contains("/debug") ? "debug" : dir)
}

/// `busctl --user get-property io.ringmaster.Ringmaster1 … Manager Version` every `interval`
/// on a background thread, each call timed (timedRun): how long a user's D-Bus call waits for
/// the daemon's loop while it works. `stop()` it on every path (`defer`).
final class BusLatencyProbe {
    struct Sample {
        var at: Date
        var seconds: Double
        var answered: Bool
    }

    private let lock = NSLock()
    private var running = true
    private var samples: [Sample] = []
    private let finished = DispatchSemaphore(value: 0)
    private var stopped = false

    /// The same `busctl` call answered by dbus-daemon itself: what starting a client process
    /// and a round trip through the bus cost at that moment, whatever ringmasterd does.
    static let dbusDaemonCall = ["busctl", "--user", "--timeout=10", "call", "org.freedesktop.DBus",
                                 "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId"]

    init(interval: TimeInterval = 0.05, callTimeout: TimeInterval = 10, argv: [String]? = nil) {
        let argv = argv ?? ["busctl", "--user", "--timeout=\(Int(callTimeout))", "get-property",
                            API.name, API.managerPath, API.manager, "Version"]
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                let at = Date()
                let r = try? timedRun(argv)
                lock.withLock { samples.append(Sample(at: at, seconds: r?.seconds ?? 0, answered: r?.status == 0)) }
                let next = at.addingTimeInterval(interval).timeIntervalSinceNow
                if next > 0 { Thread.sleep(forTimeInterval: next) }
            }
            finished.signal()
        }
    }

    /// Every sample so far.
    var all: [Sample] { lock.withLock { samples } }

    /// The samples taken from `start` on (up to `end`).
    func samples(from start: Date, to end: Date = .distantFuture) -> [Sample] {
        all.filter { $0.at >= start && $0.at <= end }
    }

    /// Stops after the call under way; later calls do nothing.
    func stop() {
        lock.withLock { running = false }
        if !stopped {
            _ = finished.wait(timeout: .now() + 30)
            stopped = true
        }
    }
}

extension Array where Element == BusLatencyProbe.Sample {
    var latencies: Latencies {
        var l = Latencies()
        for s in self { l.add(s.seconds) }
        return l
    }
    var unanswered: Int { filter { !$0.answered }.count }
}

/// The daemon's own answer time: one long-lived D-Bus connection (dbusburst.py --probe) asks
/// `Properties.Get(Version)` every `interval`, timing each answer. Beside `BusLatencyProbe`
/// (a `busctl` process per call, as a user's script would), it tells the daemon's share of a
/// slow call from the cost of starting a client process on a busy machine.
final class ConnectionLatencyProbe {
    private let process = Process()
    private let output: String

    init(dir: String, interval: TimeInterval = 0.05) throws {
        let script = dir + "/dbusburst.py"
        try faultDBusClient.write(toFile: script, atomically: true, encoding: .utf8)
        output = dir + "/connection-probe.txt"
        FileManager.default.createFile(atPath: output, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--probe", API.name, API.managerPath, API.manager, "Version",
                             String(interval)]
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// The calls made from `start` on (up to `end`): answered ones with their latency.
    func samples(from start: Date, to end: Date = .distantFuture) -> [BusLatencyProbe.Sample] {
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line -> BusLatencyProbe.Sample? in
            let f = line.split(separator: " ")
            guard f.count == 3, let at = Double(f[0]), let ms = Double(f[1]) else { return nil }
            let date = Date(timeIntervalSince1970: at)
            guard date >= start, date <= end else { return nil }
            return BusLatencyProbe.Sample(at: date, seconds: ms / 1000, answered: f[2] == "OK")
        }
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}
