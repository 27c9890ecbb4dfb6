// One ringmasterd under test: a child of the test process, or a transient user service.
import Foundation
import Glibc
import XCTest

final class Daemon {
    enum Mode {
        /// A child of the test process with `--log-target auto`: its stderr is a file, so it
        /// picks the console (child lines as `web.2 | line` on its stderr).
        case console
        /// A child of the test process with `--log-target journal`: children log to journald
        /// streams, the daemon's events go to the journal with RINGMASTER_* fields. Nothing of
        /// systemd's cleans up after it, so what it leaves behind is really its own.
        case journal
        /// `systemd-run --user --unit=… -p Type=exec -p KillMode=mixed`: a transient user
        /// service whose stderr is a journald stream, so `auto` must pick the journal.
        case unit
    }

    let mode: Mode
    let configPath: String
    /// the transient unit's name (mode .unit)
    let unit: String?
    /// where a direct daemon's stderr (and stdout) go
    let stderrPath: String
    /// where a unit's ExecStopPost= writes "$EXIT_CODE $EXIT_STATUS" (a transient unit that
    /// exited cleanly is unloaded at once, its ExecMain* properties with it)
    private let unitExitPath: String
    private let process: Process?
    private(set) var pid: Int32
    private var exitStatus: Int32?

    /// Starts ringmasterd on `configPath`. `environment` is added to (or, with an empty value,
    /// removed from) the test's own environment; ignored in mode .unit.
    init(mode: Mode, configPath: String, directory: String, unitName: String,
         arguments: [String] = [], environment: [String: String] = [:]) throws {
        self.mode = mode
        self.configPath = configPath
        self.stderrPath = directory + "/ringmasterd.stderr"
        self.unitExitPath = directory + "/\(unitName).exit"
        let binary = try Binaries.ringmasterd()
        switch mode {
        case .console, .journal:
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["--config", configPath] + (mode == .journal ? ["--log-target", "journal"] : []) + arguments
            p.environment = Self.environment(environment)
            p.currentDirectoryURL = URL(fileURLWithPath: directory)
            p.standardInput = FileHandle.nullDevice
            let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
            p.standardOutput = err
            p.standardError = err
            try p.run()
            try? err.close()
            process = p
            unit = nil
            pid = p.processIdentifier
        case .unit:
            process = nil
            unit = unitName + ".service"
            let r = try runCommand(["systemd-run", "--user", "--quiet", "--unit=\(unitName)",
                             "--property=Type=exec", "--property=KillMode=mixed",
                             "--property=TimeoutStopSec=30s",
                             "--property=ExecStopPost=/bin/sh -c 'echo ${EXIT_CODE} ${EXIT_STATUS} > \(unitExitPath)'",
                             "--",
                             binary, "--config", configPath] + arguments)
            guard r.status == 0 else {
                throw HarnessError("systemd-run \(unitName) failed (\(r.status)): \(r.stderr)")
            }
            pid = 0
            pid = try require("the MainPID of \(unitName)", timeout: 10) {
                let p = Int32(try self.unitProperty("MainPID")) ?? 0
                return p > 0 ? p : nil
            }
        }
    }

    /// The test's own environment without what systemd passes to a service (NOTIFY_SOCKET,
    /// LISTEN_*, JOURNAL_STREAM, WATCHDOG_*, INVOCATION_ID: a ringmasterd the test starts must
    /// not think systemd started it), with `changes` applied (an empty value removes).
    static func environment(_ changes: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for name in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM",
                     "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID"] {
            env[name] = nil
        }
        for (k, v) in changes { env[k] = v.isEmpty ? nil : v }
        return env
    }

    // MARK: state

    var isRunning: Bool {
        switch mode {
        case .console, .journal: return process?.isRunning ?? false
        case .unit:
            let state = (try? unitProperty("ActiveState")) ?? ""
            return state == "active" || state == "activating" || state == "deactivating" || state == "reloading"
        }
    }

    func unitProperty(_ name: String) throws -> String {
        guard let unit else { return "" }
        let r = try runCommand(["systemctl", "--user", "show", "--property=\(name)", "--value", unit])
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits for the daemon to exit; its exit status (128+N when killed by signal N), or nil
    /// if it still runs after `timeout`.
    func waitForExit(timeout: TimeInterval) -> Int32? {
        if let exitStatus { return exitStatus }
        guard waitUntil(timeout: timeout, poll: 0.01, { !self.isRunning }) else { return nil }
        switch mode {
        case .console, .journal:
            guard let process else { return nil }
            process.waitUntilExit()
            exitStatus = process.terminationReason == .uncaughtSignal
                ? 128 + process.terminationStatus : process.terminationStatus
        case .unit:
            guard let words = (waitUntil(timeout: 5) { contents(self.unitExitPath) })?.split(separator: " "),
                  words.count == 2, let status = Int32(words[1]) ?? signalNumber(String(words[1])) else { return nil }
            exitStatus = words[0] == "exited" ? status : 128 + status
        }
        return exitStatus
    }

    func signal(_ signo: Int32) {
        guard pid > 0, isRunning else { return }
        kill(pid, signo)
    }

    /// SIGTERM, then its exit status; throws if it does not exit within `timeout`.
    @discardableResult
    func terminate(timeout: TimeInterval = 20) throws -> Int32 {
        signal(SIGTERM)
        guard let status = waitForExit(timeout: timeout) else {
            throw HarnessError("ringmasterd (pid \(pid)) still runs \(timeout)s after SIGTERM")
        }
        return status
    }

    /// Whatever it takes: SIGTERM, then SIGKILL; for a unit, `systemctl --user stop`.
    func forceStop() {
        switch mode {
        case .console, .journal:
            if isRunning {
                kill(pid, SIGTERM)
                if waitForExit(timeout: 20) == nil { kill(pid, SIGKILL); _ = waitForExit(timeout: 10) }
            }
        case .unit:
            guard let unit else { return }
            _ = try? runCommand(["systemctl", "--user", "stop", unit], timeout: 60)
            _ = waitForExit(timeout: 5)
            _ = try? runCommand(["systemctl", "--user", "reset-failed", unit])
        }
    }

    // MARK: output

    /// The daemon's stderr (modes .console, .journal).
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The daemon's own journal entries (its events and, for a unit, its stderr).
    func journal() throws -> [JournalEntry] { try Journal.entries(["_PID=\(pid)"]) }

    /// Everything the daemon said, as text: stderr, or its journal messages.
    func log() -> String {
        switch mode {
        case .console: return stderr
        case .journal: return stderr + ((try? journal())?.messages.joined(separator: "\n") ?? "")
        case .unit: return (try? journal())?.messages.joined(separator: "\n") ?? ""
        }
    }
}

/// "TERM" → 15 (systemd gives $EXIT_STATUS of a killed process as a signal name).
private func signalNumber(_ name: String) -> Int32? {
    let names: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ABRT": SIGABRT, "KILL": SIGKILL,
                                  "SEGV": SIGSEGV, "PIPE": SIGPIPE, "TERM": SIGTERM, "USR1": SIGUSR1, "USR2": SIGUSR2]
    return names[name]
}
