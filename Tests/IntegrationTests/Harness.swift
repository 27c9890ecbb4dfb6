// The harness for the integration tests: the real `ringmasterd` and `ringctl` against a real
// systemd user session (journald, D-Bus, `systemd --user`), which scripts/systemd-session
// provides (`make check` runs these tests inside one).
//
// Every test gets its own directory and its own service names (a per-test prefix), so the
// journal queries of one test never see another's entries and the leftover check can tell
// exactly which processes are its own. Waiting is always on a condition with a deadline.
import Foundation
import Glibc
import XCTest

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - the session and the binaries

enum Session {
    static let requirement =
        "run `make check`: integration tests need the private systemd session (scripts/systemd-session)"
    static var isActive: Bool { ProcessInfo.processInfo.environment["RINGMASTER_TEST_SESSION"] == "1" }
}

enum Binaries {
    /// `RINGMASTER_BIN_DIR`, else the build directory the test bundle itself is in
    /// (`.build/<triple>/debug/RingmasterPackageTests.xctest` beside `ringmasterd`).
    static func directory() throws -> String {
        if let dir = ProcessInfo.processInfo.environment["RINGMASTER_BIN_DIR"], !dir.isEmpty {
            return dir
        }
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent)
        }
        candidates.append(Bundle.main.bundleURL.path)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().path)
        for dir in candidates where FileManager.default.isExecutableFile(atPath: dir + "/ringmasterd") {
            return dir
        }
        throw HarnessError("no ringmasterd beside the test bundle (looked in \(candidates.joined(separator: ", "))); "
                           + "build it first (`swift build --build-tests`) or set RINGMASTER_BIN_DIR")
    }

    static func path(_ name: String) throws -> String {
        let p = try directory() + "/" + name
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw HarnessError("\(p) is missing: build it first (`swift build --build-tests`)")
        }
        return p
    }

    static func ringmasterd() throws -> String { try path("ringmasterd") }
    static func ringctl() throws -> String { try path("ringctl") }

    /// contrib/examples in the source tree (Tests/IntegrationTests/../../contrib/examples).
    static var examples: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("contrib/examples").path
    }
}

// MARK: - waiting

/// Retries `condition` every `poll` seconds until it returns a value or `deadline` passes.
func waitUntil<T>(deadline: Date, poll: TimeInterval = 0.02, _ condition: () throws -> T?) rethrows -> T? {
    while true {
        if let value = try condition() { return value }
        if Date() >= deadline { return nil }
        Thread.sleep(forTimeInterval: poll)
    }
}

/// `waitUntil(deadline:)` with the deadline `timeout` seconds from now.
func waitUntil<T>(timeout: TimeInterval = 10, poll: TimeInterval = 0.02,
                  _ condition: () throws -> T?) rethrows -> T? {
    try waitUntil(deadline: Date().addingTimeInterval(timeout), poll: poll, condition)
}

/// `waitUntil` for a Bool condition.
@discardableResult
func waitUntil(timeout: TimeInterval = 10, poll: TimeInterval = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    try waitUntil(timeout: timeout, poll: poll) { try condition() ? true : nil } ?? false
}

/// Like `waitUntil`, but a miss throws with `what` (so a test stops at the first thing that
/// did not happen, saying what it waited for).
func require<T>(_ what: @autoclosure () -> String, timeout: TimeInterval = 10, poll: TimeInterval = 0.02,
                _ condition: () throws -> T?) throws -> T {
    guard let value = try waitUntil(timeout: timeout, poll: poll, condition) else {
        throw HarnessError("timed out after \(timeout)s waiting for \(what())")
    }
    return value
}

func require(_ what: @autoclosure () -> String, timeout: TimeInterval = 10, poll: TimeInterval = 0.02,
             _ condition: () throws -> Bool) throws {
    _ = try require(what(), timeout: timeout, poll: poll) { try condition() ? true : nil }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock every process on the machine shares (Python's
/// time.monotonic_ns(), the journal's _SOURCE_MONOTONIC_TIMESTAMP in µs, systemd's *Monotonic).
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

// MARK: - running commands

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `argv` to completion (killing it after `timeout`), its output collected in files so
/// that nothing can block on a full pipe.
@discardableResult
func runCommand(_ argv: [String], environment: [String: String]? = nil, timeout: TimeInterval = 30) throws -> CommandResult {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ringmaster-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    p.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    if let environment { p.environment = environment }
    p.standardInput = FileHandle.nullDevice
    let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
    p.standardOutput = outHandle
    p.standardError = errHandle
    try p.run()
    // The child has its own copies now; Foundation would keep ours open (fds leak per call).
    try? outHandle.close()
    try? errHandle.close()
    if !waitUntil(timeout: timeout, poll: 0.005, { !p.isRunning }) {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw HarnessError("\(argv.joined(separator: " ")) did not finish within \(timeout)s")
    }
    return CommandResult(status: p.terminationStatus,
                         stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

// MARK: - the journal

typealias JournalEntry = [String: String]

enum Journal {
    /// Every entry matching the journalctl `matches` ("FIELD=VALUE", "-t", "ID", …), oldest first.
    static func entries(_ matches: [String]) throws -> [JournalEntry] {
        let r = try runCommand(["journalctl", "--no-pager", "-o", "json", "--all"] + matches)
        var entries: [JournalEntry] = []
        for line in r.stdout.split(separator: "\n") where line.first == "{" {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            var entry: JournalEntry = [:]
            for (key, value) in object {
                if let s = value as? String { entry[key] = s }
                else if let bytes = value as? [Int] { entry[key] = String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self) }
                else if let many = value as? [Any] { entry[key] = many.compactMap { $0 as? String }.last }
            }
            entries.append(entry)
        }
        return entries
    }

    /// Entries written under SYSLOG_IDENTIFIER `identifier` (a child's lines: the service name).
    static func lines(identifier: String) throws -> [JournalEntry] { try entries(["-t", identifier]) }

    /// The daemon's own entries about `service` (RINGMASTER_SERVICE=service).
    static func events(service: String) throws -> [JournalEntry] { try entries(["RINGMASTER_SERVICE=\(service)"]) }
}

extension Array where Element == JournalEntry {
    var messages: [String] { compactMap { $0["MESSAGE"] } }
    func event(_ name: String) -> [JournalEntry] { filter { $0["RINGMASTER_EVENT"] == name } }
}

// MARK: - processes

struct ProcessInfoEntry {
    var pid: Int32
    var ppid: Int32
    var state: Character
    var environment: [String: String]
    var arguments: [String]

    var service: String? { environment["RINGMASTER_SERVICE"] }
    var instance: Int? { environment["RINGMASTER_INSTANCE"].flatMap { Int($0) } }

    /// The target of /proc/PID/cwd.
    var workingDirectory: String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") }
    /// The target of /proc/PID/fd/N ("socket:[123]", a path, …).
    func fd(_ n: Int) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(n)") }
}

enum Processes {
    /// Every live (non-zombie) process, read from /proc.
    static func all() -> [ProcessInfoEntry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { Int32($0) }.compactMap(read)
    }

    static func read(_ pid: Int32) -> ProcessInfoEntry? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // "pid (comm) S ppid ...": comm may contain spaces and parentheses.
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 2, let state = rest[0].first, let ppid = Int32(rest[1]), state != "Z" else { return nil }
        func nulSeparated(_ file: String) -> [String] {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/\(file)") else { return [] }
            return data.split(separator: 0, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
        }
        var environment: [String: String] = [:]
        for entry in nulSeparated("environ") {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            environment[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return ProcessInfoEntry(pid: pid, ppid: ppid, state: state, environment: environment,
                                arguments: nulSeparated("cmdline"))
    }

    /// Processes whose environment has RINGMASTER_SERVICE=`service`.
    static func of(service: String) -> [ProcessInfoEntry] { all().filter { $0.service == service } }

    /// Processes whose RINGMASTER_SERVICE starts with `prefix` (everything one test started).
    static func withServicePrefix(_ prefix: String) -> [ProcessInfoEntry] {
        all().filter { $0.service?.hasPrefix(prefix) == true }
    }

    static func isAlive(_ pid: Int32) -> Bool { read(pid) != nil }
}

// MARK: - small things tests need

enum TOML {
    /// A TOML basic string.
    static func string(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    static func array(_ items: [String]) -> String { "[" + items.map(string).joined(separator: ", ") + "]" }
}

/// `[services.NAME]`: `instances` of contrib/examples/httpworker.py serving `socket`, each one
/// ready once it sent READY=1, a dead one replaced after 10 ms.
func httpWorkers(_ name: String, socket: String = "http", instances: Int = 2) -> String {
    """
    [services.\(name)]
    command = ["python3", \(TOML.string(Binaries.examples + "/httpworker.py"))]
    instances = \(instances)
    sockets = [\(TOML.string(socket))]
    ready = "notify"
    restart-delay = "10ms"
    """
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
        }
    }
    guard ok else { throw HarnessError("bind 127.0.0.1:0: \(String(cString: strerror(errno)))") }
    return UInt16(bigEndian: addr.sin_port)
}

/// A plain HTTP/1.0 client over a TCP socket (URLSession is unreliable on Linux).
final class HTTPConnection {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; sends nothing yet.
    init(port: UInt16, timeout: TimeInterval = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else {
            let e = errno
            close(fd)
            throw HarnessError("connect 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
    }

    deinit { close(fd) }

    /// Sends `GET path` and reads the reply to EOF: (status code, body).
    func get(_ path: String = "/") throws -> (status: Int, body: String) {
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HarnessError("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw HarnessError("receive: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            reply += buffer[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first,
              let code = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw HarnessError("not an HTTP reply: \(text.debugDescription)")
        }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (code, body)
    }
}

func httpGet(port: UInt16, _ path: String = "/") throws -> (status: Int, body: String) {
    try HTTPConnection(port: port).get(path)
}

/// "k=v k=v" → [k: v]
func keyValues(_ line: String) -> [String: String] {
    var out: [String: String] = [:]
    for word in line.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
        guard let eq = word.firstIndex(of: "=") else { continue }
        out[String(word[..<eq])] = String(word[word.index(after: eq)...])
    }
    return out
}

/// The contents of a file, trimmed, or nil if it does not exist (yet).
func contents(_ path: String) -> String? {
    guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    return s.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// How many connections wait in the accept queue of the TCP socket listening on 127.0.0.1:`port`
/// (the rx_queue column of /proc/net/tcp for a LISTEN socket).
func acceptQueueLength(port: UInt16) throws -> Int {
    let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
    let local = String(format: "0100007F:%04X", port)
    for line in table.split(separator: "\n").dropFirst() {
        let f = line.split(separator: " ")
        // sl local_address rem_address st tx_queue:rx_queue ...; st 0A = LISTEN
        guard f.count > 4, f[1] == local, f[3] == "0A" else { continue }
        return Int(f[4].split(separator: ":").last ?? "", radix: 16) ?? 0
    }
    throw HarnessError("no socket listens on 127.0.0.1:\(port)")
}
