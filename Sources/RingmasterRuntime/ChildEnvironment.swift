import Glibc
import RingmasterCore

/// What every child starts from: the daemon's environment minus what belongs to the daemon
/// alone (its NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*, JOURNAL_STREAM, SYSTEMD_EXEC_PID, …:
/// `daemonOnly`), plus per-service settings.
public struct ChildEnvironment {
    /// "K=V", the daemon's own, filtered
    public var base: [String]
    public var home: String
    /// relative `working-directory` and the default one: the main config file's directory
    public var configDirectory: String
    public let devNull: Int32
    /// the soft RLIMIT_NOFILE children get back, when the daemon raised its own
    public var nofileSoftLimit: UInt64?

    /// What systemd sets for the daemon's own unit and process (systemd.exec(5) "Environment
    /// Variables Set or Propagated by the Service Manager", up to v256): each names the daemon,
    /// its unit or its invocation, and would mislead a child (SYSTEMD_EXEC_PID is the daemon's
    /// pid; FDSTORE, MEMORY_PRESSURE_* its fd store and pressure file; CREDENTIALS_DIRECTORY
    /// its secrets). `*_DIRECTORY` of the unit (RUNTIME_, STATE_, …) are kept: the children
    /// are part of the unit.
    static let daemonOnly: Set<String> = [
        "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
        "JOURNAL_STREAM", "INVOCATION_ID", "MANAGERPID", "SYSTEMD_EXEC_PID", "MAINPID", "PIDFILE",
        "FDSTORE", "MEMORY_PRESSURE_WATCH", "MEMORY_PRESSURE_WRITE", "CREDENTIALS_DIRECTORY",
        "TRIGGER_UNIT", "TRIGGER_PATH", "TRIGGER_TIMER_REALTIME_USEC", "TRIGGER_TIMER_MONOTONIC_USEC",
        "MONITOR_SERVICE_RESULT", "MONITOR_EXIT_CODE", "MONITOR_EXIT_STATUS", "MONITOR_INVOCATION_ID",
        "MONITOR_UNIT", "SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS", "REMOTE_ADDR", "REMOTE_PORT",
        WorkingSetTrim.delayVariable,
    ]

    public init(configDirectory: String) throws {
        var base: [String] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            let name = s.split(separator: "=", maxSplits: 1).first.map(String.init) ?? s
            if !Self.daemonOnly.contains(name) { base.append(s) }
            p += 1
        }
        self.base = base
        self.home = getenv("HOME").map { String(cString: $0) } ?? "/"
        self.configDirectory = configDirectory
        let fd = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError("open /dev/null", errno: errno) }
        self.devNull = fd
        self.nofileSoftLimit = nil
    }

    /// Raises the daemon's soft fd limit to its hard limit (every instance costs the daemon a
    /// pidfd and a notify socket: 1000 instances would not fit the usual 1024) and remembers the
    /// old soft limit for the children, as systemd does for itself.
    public mutating func raiseFileLimit() {
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0, rl.rlim_cur < rl.rlim_max else { return }
        let soft = rl.rlim_cur
        rl.rlim_cur = rl.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 { nofileSoftLimit = UInt64(soft) }
    }

    public func forChild(service: ServiceConfig, instance: Int, notifySocket: String) -> [String] {
        var env = base
        for v in service.envFileEnvironment { set(&env, v.name, v.value) }
        for v in service.environment { set(&env, v.name, v.value) }
        set(&env, "RINGMASTER_SERVICE", service.name)
        set(&env, "RINGMASTER_INSTANCE", String(instance))
        set(&env, "NOTIFY_SOCKET", notifySocket)
        if !service.sockets.isEmpty {
            set(&env, "LISTEN_FDS", String(service.sockets.count))
            set(&env, "LISTEN_FDNAMES", service.sockets.joined(separator: ":"))
            // LISTEN_PID is written by the child itself, from getpid(), right before exec.
        }
        if let watchdog = service.watchdog {
            // As systemd for WatchdogSec=; WATCHDOG_PID is written by the child (SpawnRequest.watchdogPID).
            set(&env, "WATCHDOG_USEC", String(watchdog))
        }
        return env
    }

    public func workingDirectory(for service: ServiceConfig) -> String {
        guard let dir = service.workingDirectory, !dir.isEmpty else { return configDirectory }
        if dir == "~" { return home }
        if dir.hasPrefix("~/") { return home + dir.dropFirst(1) }
        if dir.hasPrefix("/") { return dir }
        return configDirectory + "/" + dir
    }

    private func set(_ env: inout [String], _ name: String, _ value: String) {
        let prefix = name + "="
        env.removeAll { $0.hasPrefix(prefix) }
        env.append(prefix + value)
    }
}
