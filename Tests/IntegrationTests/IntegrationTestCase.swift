// The base of every integration test: a private directory, unique service names, daemons
// that are always stopped, and a check that nothing the test started is left running.
import Foundation
import Glibc
import XCTest

class IntegrationTestCase: XCTestCase {
    /// Unique per test: every service name starts with it ("it3fa2c1-web").
    private(set) var prefix = ""
    /// A fresh directory, removed afterwards: configs, files the children write.
    private(set) var dir = ""
    private var daemons: [Daemon] = []

    /// Outside the session a test fails at once, with what to run instead (not a skip: a
    /// run that tested nothing must not look green).
    override func invokeTest() {
        guard Session.isActive else {
            XCTFail(Session.requirement)
            return
        }
        super.invokeTest()
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        prefix = "it" + String(UInt32.random(in: 0x100000...0xffffff), radix: 16)
        var template = Array("/tmp/ringmaster-it-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw HarnessError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        dir = String(cString: p)
    }

    override func tearDownWithError() throws {
        for daemon in daemons { daemon.forceStop() }
        if let run = testRun, run.totalFailureCount > 0 { dumpLogs() }
        daemons.removeAll()
        if !prefix.isEmpty {
            // SIGKILLs sent by the daemon as it exited may take a moment to land.
            let gone = waitUntil(timeout: 3) { Processes.withServicePrefix(self.prefix).isEmpty }
            if !gone {
                let left = Processes.withServicePrefix(prefix)
                XCTFail("left running: " + left.map { "\($0.pid) \($0.service ?? "")[\($0.instance ?? -1)] \($0.arguments.joined(separator: " "))" }
                    .joined(separator: "; "))
                for p in left { kill(p.pid, SIGKILL) }
            }
        }
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
        try super.tearDownWithError()
    }

    /// `prefix-name`: a service name no other test uses (and the journal identifier of its lines).
    func service(_ name: String) -> String { "\(prefix)-\(name)" }

    /// Writes `toml` to `dir/name` and returns its path.
    @discardableResult
    func writeConfig(_ toml: String, name: String = "ringmaster.toml") throws -> String {
        let path = dir + "/" + name
        try toml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Writes `toml` and starts a daemon on it; it is stopped (and checked for leftovers)
    /// after the test whatever happens.
    func startDaemon(_ toml: String, mode: Daemon.Mode = .console, arguments: [String] = [],
                     environment: [String: String] = [:]) throws -> Daemon {
        let path = try writeConfig(toml)
        let daemon = try Daemon(mode: mode, configPath: path, directory: dir,
                                unitName: "rm-test-\(prefix)-\(daemons.count)",
                                arguments: arguments, environment: environment)
        daemons.append(daemon)
        return daemon
    }

    /// The instance processes of `service` whose parent is `parent` (a ringmasterd), by
    /// instance number: the main process of each instance, not what it started.
    func instances(of service: String, parent: Int32) -> [Int: ProcessInfoEntry] {
        var out: [Int: ProcessInfoEntry] = [:]
        for p in Processes.of(service: service) where p.ppid == parent {
            if let i = p.instance { out[i] = p }
        }
        return out
    }

    /// The instance processes of `service` (children of `daemon`), by instance number.
    func instances(of service: String, daemon: Daemon) -> [Int: ProcessInfoEntry] {
        instances(of: service, parent: daemon.pid)
    }

    /// Waits until `service` has `count` instance processes under `parent`, 0..<count, and
    /// returns them.
    func requireInstances(_ count: Int, of service: String, parent: Int32,
                          timeout: TimeInterval = 20) throws -> [Int: ProcessInfoEntry] {
        try require("\(count) instances of \(service) under pid \(parent)", timeout: timeout) {
            let found = self.instances(of: service, parent: parent)
            return found.keys.sorted() == Array(0..<count) ? found : nil
        }
    }

    /// `requireInstances(_:of:parent:)` under `daemon`; a miss shows what the daemon said.
    func requireInstances(_ count: Int, of service: String, daemon: Daemon, timeout: TimeInterval = 15,
                          file: StaticString = #filePath, line: UInt = #line) throws -> [Int: ProcessInfoEntry] {
        do {
            return try requireInstances(count, of: service, parent: daemon.pid, timeout: timeout)
        } catch {
            XCTFail("\(error)\n--- ringmasterd said:\n\(daemon.log())", file: file, line: line)
            throw error
        }
    }

    /// Waits until the daemon's log (stderr or journal) contains `text`.
    func requireLog(_ text: String, daemon: Daemon, timeout: TimeInterval = 10,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        do {
            try require("\"\(text)\" in ringmasterd's log", timeout: timeout, poll: 0.05) { daemon.log().contains(text) }
        } catch {
            XCTFail("\(error)\n--- ringmasterd said:\n\(daemon.log())", file: file, line: line)
            throw error
        }
    }

    /// Waits until the journal has an entry for which `match` holds among `query()`'s.
    @discardableResult
    func requireJournal(_ what: String, timeout: TimeInterval = 10, _ query: () throws -> [JournalEntry],
                        where match: (JournalEntry) -> Bool) throws -> JournalEntry {
        try require(what, timeout: timeout, poll: 0.05) { try query().first(where: match) }
    }

    private func dumpLogs() {
        print("--- \(name): ringmasterd logs (prefix \(prefix), dir \(dir))")
        for (i, d) in daemons.enumerated() {
            print("--- daemon \(i) (pid \(d.pid), \(d.mode)):")
            print(d.log())
        }
        if let entries = try? Journal.entries(["--since=-5min"]) {
            let mine = entries.filter { ($0["SYSLOG_IDENTIFIER"] ?? "").hasPrefix(prefix) || ($0["RINGMASTER_SERVICE"] ?? "").hasPrefix(prefix) }
            if !mine.isEmpty {
                print("--- journal entries of \(prefix)-*:")
                for e in mine { print("\(e["SYSLOG_IDENTIFIER"] ?? "?")[\(e["_PID"] ?? "?")] p\(e["PRIORITY"] ?? "?"): \(e["MESSAGE"] ?? "")") }
            }
        }
    }
}
