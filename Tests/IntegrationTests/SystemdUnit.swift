// ringmaster.service and ringmaster.socket from units/, installed into the test session's
// systemd --user as a user would install them, with two test-only changes: ExecStart= runs
// the built ringmasterd on the test's config, and the socket listens on the test's port.
//
// The unit files go to $XDG_RUNTIME_DIR/systemd/user (a directory in the user manager's
// search path that lives on the session's private /run: nothing of a test reaches the real
// ~/.config), and `enable --runtime` puts the links beside them.
import Foundation
import Glibc
import XCTest

final class RingmasterUnit {
    static let service = "ringmaster.service"
    static let socket = "ringmaster.socket"

    let directory: String
    private var dropIns: [String] = []

    /// The source tree's units/ (Tests/IntegrationTests/../../units).
    static var sourceUnits: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("units").path
    }

    /// Installs the units: the service runs `ringmasterd --config configPath`; the socket, if
    /// `socketPort` is given, listens on 127.0.0.1:socketPort.
    init(configPath: String, socketPort: UInt16? = nil, extraArguments: [String] = []) throws {
        guard let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty else {
            throw HarnessError("XDG_RUNTIME_DIR is not set: not inside the session")
        }
        directory = runtime + "/systemd/user"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // A previous test that failed badly may have left its units: start clean.
        Self.cleanUp(directory: directory)

        let binary = try Binaries.ringmasterd()
        let service = try String(contentsOfFile: Self.sourceUnits + "/" + Self.service, encoding: .utf8)
        var sawExecStart = false
        let rewritten = service.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("ExecStart=") else { return String(line) }
            sawExecStart = true
            return "ExecStart=" + ([binary, "--config", configPath] + extraArguments).joined(separator: " ")
        }.joined(separator: "\n")
        guard sawExecStart else { throw HarnessError("units/ringmaster.service has no ExecStart= line") }
        try rewritten.write(toFile: directory + "/" + Self.service, atomically: true, encoding: .utf8)

        if let socketPort {
            let socket = try String(contentsOfFile: Self.sourceUnits + "/" + Self.socket, encoding: .utf8)
            let replaced = socket.replacingOccurrences(of: "ListenStream=127.0.0.1:8080", with: "ListenStream=127.0.0.1:\(socketPort)")
            guard replaced != socket else { throw HarnessError("units/ringmaster.socket has no ListenStream=127.0.0.1:8080") }
            try replaced.write(toFile: directory + "/" + Self.socket, atomically: true, encoding: .utf8)
        }
        try daemonReload()
    }

    /// Adds `ringmaster.service.d/NAME.conf` with `[Service]` + `lines`.
    func addDropIn(_ name: String, _ lines: [String]) throws {
        let dir = directory + "/" + Self.service + ".d"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try (["[Service]"] + lines).joined(separator: "\n").appending("\n")
            .write(toFile: dir + "/\(name).conf", atomically: true, encoding: .utf8)
        dropIns.append(name)
        try daemonReload()
    }

    func daemonReload() throws { try systemctl("daemon-reload") }

    /// `systemctl --user ARGS…`; throws unless it exits 0.
    @discardableResult
    func systemctl(_ args: String..., timeout: TimeInterval = 60) throws -> CommandResult {
        let r = try runCommand(["systemctl", "--user", "--no-pager"] + args, timeout: timeout)
        guard r.status == 0 else {
            throw HarnessError("systemctl --user \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr)\(r.stdout)\n"
                               + statusReport())
        }
        return r
    }

    /// `systemctl --user show -p NAME --value UNIT`.
    func property(_ name: String, of unit: String = RingmasterUnit.service) -> String {
        let r = try? runCommand(["systemctl", "--user", "show", "--property=\(name)", "--value", unit])
        return r?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// Several properties at once (`show -p A,B,C`), as NAME → value.
    func properties(_ names: [String], of unit: String = RingmasterUnit.service) -> [String: String] {
        guard let r = try? runCommand(["systemctl", "--user", "show", "--property=" + names.joined(separator: ","), unit]) else {
            return [:]
        }
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }

    var mainPID: Int32 { Int32(property("MainPID")) ?? 0 }
    var activeState: String { property("ActiveState") }
    var statusText: String { property("StatusText") }

    /// Waits until the service is active with a main pid, and returns that pid.
    @discardableResult
    func requireActive(timeout: TimeInterval = 30, differentFrom old: Int32? = nil) throws -> Int32 {
        do {
            return try require("\(Self.service) active" + (old.map { " with a main pid other than \($0)" } ?? ""),
                               timeout: timeout, poll: 0.05) {
                let p = self.properties(["ActiveState", "MainPID"])
                guard p["ActiveState"] == "active", let pid = Int32(p["MainPID"] ?? ""), pid > 0, pid != old else { return nil }
                return pid
            }
        } catch {
            throw HarnessError("\(error)\n\(statusReport())")
        }
    }

    /// `systemctl status` (its first 80 lines: the cgroup tree of thousands of instances is
    /// not worth more) and the unit's journal, for failure messages.
    func statusReport() -> String {
        let full = (try? runCommand(["systemctl", "--user", "--no-pager", "--full", "status", Self.service, Self.socket]))?.stdout ?? ""
        let lines = full.split(separator: "\n", omittingEmptySubsequences: false)
        let status = lines.prefix(80).joined(separator: "\n") + (lines.count > 80 ? "\n… (\(lines.count - 80) more lines)" : "")
        let journal = (try? runCommand(["journalctl", "--no-pager", "--user-unit", Self.service, "-n", "60", "-o", "short-monotonic"]))?.stdout ?? ""
        return "--- systemctl status:\n\(status)\n--- journal of \(Self.service):\n\(journal)"
    }

    /// The daemon's journal messages (everything logged under the unit).
    func journalMessages() -> String {
        (try? runCommand(["journalctl", "--no-pager", "--user-unit", Self.service, "-o", "cat"]))?.stdout ?? ""
    }

    /// Stops and disables both units, removes the files, forgets failures.
    func remove() {
        _ = try? runCommand(["systemctl", "--user", "stop", Self.socket, Self.service], timeout: 120)
        _ = try? runCommand(["systemctl", "--user", "disable", "--runtime", Self.socket, Self.service])
        Self.cleanUp(directory: directory)
        _ = try? runCommand(["systemctl", "--user", "daemon-reload"])
        _ = try? runCommand(["systemctl", "--user", "reset-failed", Self.service, Self.socket])
    }

    private static func cleanUp(directory: String) {
        for name in [service, socket, service + ".d"] {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }
}

/// The cgroup v2 path of `pid` (the `0::` line of /proc/PID/cgroup).
func cgroupPath(of pid: Int32) -> String? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
    return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
}

/// Where cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
func cgroup2MountPoint() -> String? {
    guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        if let dash = f.firstIndex(of: "-"), dash + 1 < f.count, f[dash + 1] == "cgroup2", f.count > 4 { return String(f[4]) }
    }
    return nil
}

/// A loop of HTTP requests on a background thread, counting what each attempt met. The thread
/// uses the loop unowned: `stop()` it on every path (`defer`) before the loop goes away.
final class HTTPClientLoop {
    private let port: UInt16
    private let lock = NSLock()
    private var running = true
    private var stopped = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    private(set) var served = 0
    private(set) var refused = 0
    /// connected, but no complete reply (e.g. a worker stopped mid-request)
    private(set) var incomplete: [String] = []
    private(set) var servedBy = Set<String>()

    init(port: UInt16) {
        self.port = port
        let t = Thread { [unowned self] in self.run() }
        thread = t
        t.start()
    }

    private func run() {
        var i = 0
        while lock.withLock({ running }) {
            i += 1
            do {
                let connection = try HTTPConnection(port: port, timeout: 30)
                do {
                    let reply = try connection.get("/loop/\(i)")
                    lock.withLock {
                        if reply.status == 200 { served += 1; servedBy.insert(keyValues(reply.body)["pid"] ?? "?") }
                        else { incomplete.append("status \(reply.status)") }
                    }
                } catch {
                    lock.withLock { incomplete.append("\(error)") }
                }
            } catch {
                lock.withLock {
                    if "\(error)".contains("Connection refused") { refused += 1 } else { incomplete.append("\(error)") }
                }
            }
        }
        finished.signal()
    }

    /// Stops after the request under way (once: later calls return the same counts); returns
    /// (served, refused, incomplete, servedBy).
    @discardableResult
    func stop() -> (served: Int, refused: Int, incomplete: [String], servedBy: Set<String>) {
        lock.withLock { running = false }
        if !stopped {
            _ = finished.wait(timeout: .now() + 60)
            stopped = true
        }
        return lock.withLock { (served, refused, incomplete, servedBy) }
    }

    var servedCount: Int { lock.withLock { served } }
    func servedBy(_ pids: Set<String>) -> Bool { lock.withLock { !servedBy.isDisjoint(with: pids) } }
}

/// The base of the Systemd* tests: the units are removed after each test whatever happens,
/// before the harness checks for leftovers. A DBusTestCase: the daemon the unit runs is on
/// the session's user bus, so the busctl/ringctl helpers work on it.
class SystemdUnitTestCase: DBusTestCase {
    var unit: RingmasterUnit?

    func installUnits(_ toml: String, socketPort: UInt16? = nil) throws -> RingmasterUnit {
        let path = try writeConfig(toml)
        let u = try RingmasterUnit(configPath: path, socketPort: socketPort)
        unit = u
        return u
    }

    override func tearDownWithError() throws {
        if let unit {
            if let run = testRun, run.totalFailureCount > 0 { print(unit.statusReport()) }
            unit.remove()
        }
        unit = nil
        try super.tearDownWithError()
    }
}
