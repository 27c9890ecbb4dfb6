// The configuration model: what ringmaster.toml describes, after parsing and validation.
// Pure values; the parser (TOMLParser.swift) and the validator (ConfigValidation.swift),
// which ConfigLoader.swift runs over the merged files, produce them.

/// Microseconds (monotonic clock for deadlines, as sd-event uses).
public typealias USec = UInt64

public extension USec {
    static let perMillisecond: USec = 1_000
    static let perSecond: USec = 1_000_000
}

/// A place in a config file, 1-based line and column.
public struct SourceLocation: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file; self.line = line; self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem in a config file: printed as `file:line:column: message`.
public struct ConfigDiagnostic: Error, Equatable, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    /// `message` is cut to ~512 bytes (`boundedEcho`): it may quote a huge value.
    public init(_ location: SourceLocation, _ message: String) {
        self.location = location; self.message = boundedEcho(message)
    }
    public var description: String { "\(location): \(message)" }
}

/// A rejected config: every problem found, in file order.
public struct ConfigErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]
    public init(_ diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Why one value is not valid, without a place: the validator puts it at the value's.
public struct ConfigValueProblem: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

public enum ListenAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// IPv4 dotted quad, e.g. "127.0.0.1", port
    case tcp4(host: String, port: UInt16)
    /// IPv6 literal without brackets, e.g. "::1", port
    case tcp6(host: String, port: UInt16)
    /// absolute filesystem path
    case unix(path: String)
    /// abstract namespace name, without the leading "@"
    case abstract(name: String)

    public var description: String {
        switch self {
        case let .tcp4(host, port): return "\(host):\(port)"
        case let .tcp6(host, port): return "[\(host)]:\(port)"
        case let .unix(path): return path
        case let .abstract(name): return "@" + name
        }
    }
}

public struct SocketConfig: Equatable, Hashable, Sendable {
    public enum Source: Equatable, Hashable, Sendable {
        /// bound by the daemon itself
        case listen(ListenAddress)
        /// an fd passed by systemd socket activation, by its FileDescriptorName=
        case systemd(name: String)
    }
    public var name: String
    public var source: Source
    /// `mode` of a `listen = "/path"` socket: its file's permission bits (nil: `defaultMode`)
    public var mode: UInt32?
    /// Only the user: a per-user daemon's sockets are private unless `mode` says otherwise.
    public static let defaultMode: UInt32 = 0o600
    public init(name: String, source: Source, mode: UInt32? = nil) { self.name = name; self.source = source; self.mode = mode }
}

public enum RestartPolicy: String, Equatable, Hashable, Sendable, CaseIterable {
    case always
    case onFailure = "on-failure"
    case never
}

public enum ReadyMode: String, Equatable, Hashable, Sendable, CaseIterable {
    case started
    case notify
    /// ready on the readiness probe's first success (`[services.X.readiness]`)
    case probe
}

/// `type`: a long-running service, or a task that runs to completion (ConfigTaskKeys.swift).
public enum ServiceType: String, Equatable, Hashable, Sendable, CaseIterable {
    case simple
    /// done when its process exits 0 (`exited`); its dependents wait for that success
    case oneshot
}

public struct StartLimit: Equatable, Hashable, Sendable {
    public var count: Int
    public var interval: USec
    public init(count: Int, interval: USec) { self.count = count; self.interval = interval }
}

public struct EnvironmentVariable: Equatable, Hashable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

/// One `env-file` entry: the file, resolved to a path, and whether it may be missing.
public struct EnvFileReference: Equatable, Hashable, Sendable {
    public var path: String
    /// written with a leading "-": a missing file is skipped
    public var optional: Bool
    public init(path: String, optional: Bool = false) { self.path = path; self.optional = optional }
}

public struct ServiceConfig: Equatable, Hashable, Sendable {
    /// The most instances a service may have, in the config or by a scale command: more is
    /// surely a typo (and would exhaust the machine).
    public static let maximumInstances = 10_000

    /// What is wrong with `n` as an instance count (the config's `instances`, a scale command).
    public static func instancesProblem(_ n: Int64, maximum: Int = maximumInstances) -> String? {
        (0...Int64(maximum)).contains(n) ? nil : "instances must be between 0 and \(maximum), not \(n)"
    }

    public var name: String
    /// argv; with `shell`, a single string run by `/bin/sh -c`.
    public var command: [String]
    public var shell: Bool = false
    public var instances: Int = 1
    public var sockets: [String] = []
    public var ready: ReadyMode = .started
    public var restart: RestartPolicy = .always
    public var restartDelay: USec = 100 * USec.perMillisecond
    public var restartDelayMax: USec = 30 * USec.perSecond
    public var stableAfter: USec = 10 * USec.perSecond
    public var startLimit = StartLimit(count: 5, interval: 10 * USec.perSecond)
    /// signal number
    public var stopSignal: Int32 = 15
    /// `reload-signal`: what `ringctl reload NAME` sends each instance's main process (nil:
    /// the service cannot be reloaded that way). Not part of what a reload compares.
    public var reloadSignal: Int32? = nil
    public var stopTimeout: USec = 10 * USec.perSecond
    /// `ready-timeout`: an instance that must become ready (`ready` other than "started") and
    /// is not, this long after its spawn, is a failed start (reason `ready-timeout`); 0: no limit
    public var readyTimeout: USec = 90 * USec.perSecond
    /// in file order; later duplicates win
    public var environment: [EnvironmentVariable] = []
    /// `env-file`, in order
    public var envFiles: [EnvFileReference] = []
    /// what the env files set, read at load: in order (a later one wins); `environment`
    /// wins over them. Part of `==`, so a changed env file is a changed service on reload.
    public var envFileEnvironment: [EnvironmentVariable] = []
    /// as written ("~" not yet expanded; the runtime expands it against $HOME)
    public var workingDirectory: String? = nil
    public var after: [String] = []
    public var autostart: Bool = true
    /// written into each instance's cgroup
    public var limits = ResourceLimits()
    /// `[services.X.liveness]`, `[services.X.readiness]` (Probe.swift)
    public var liveness: ProbeConfig? = nil
    public var readiness: ProbeConfig? = nil
    /// `type`: a `oneshot` is done (`exited`) once its process exits 0
    public var type: ServiceType = .simple
    /// `pre-start`: argv run to completion before each spawn (empty: none)
    public var preStart: [String] = []
    /// `watchdog`: WATCHDOG=1 expected at least this often once an instance is ready (nil: none)
    public var watchdog: USec? = nil
    /// `memory-restart`, bytes: restart an instance gracefully once its memory stays above
    /// it for `memoryRestartWindow` (InstanceMemoryRestart.swift)
    public var memoryRestart: UInt64? = nil
    /// how long memory must stay above `memoryRestart` (not a key: a fixed 5 s; tests change it)
    public var memoryRestartWindow: USec = 5 * USec.perSecond

    public init(name: String, command: [String]) {
        self.name = name; self.command = command
    }

    /// Equal but for `instances`: a reload then only scales.
    public func differsOnlyInInstances(from other: ServiceConfig) -> Bool {
        var a = self, b = other
        a.instances = 0; b.instances = 0
        return a == b && instances != other.instances
    }
}

public struct Config: Equatable, Sendable {
    /// in the order first defined
    public var sockets: [SocketConfig] = []
    /// in the order first defined
    public var services: [ServiceConfig] = []
    /// every file that contributed, in merge order
    public var files: [String] = []

    public init(sockets: [SocketConfig] = [], services: [ServiceConfig] = [], files: [String] = []) {
        self.sockets = sockets; self.services = services; self.files = files
    }

    public func service(named name: String) -> ServiceConfig? { services.first { $0.name == name } }
    public func socket(named name: String) -> SocketConfig? { sockets.first { $0.name == name } }
}
