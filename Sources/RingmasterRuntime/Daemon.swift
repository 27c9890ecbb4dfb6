import ConfigFiles
import Glibc
import RingmasterCore
import Systemd

/// The daemon as systemd and the control plane see it: one config file, one Supervisor, and
/// the truth told to systemd — READY=1 once every autostart service is ready or failed,
/// STATUS= kept current, RELOADING=1/READY=1 around a reload, STOPPING=1 on shutdown.
public final class Daemon {
    public enum State: String, Sendable { case starting, running, reloading, stopping }

    public let loop: EventLoop
    public let log: EventLog
    public let supervisor: Supervisor
    public let configPath: String
    public private(set) var state: State = .starting
    /// the last reload's error, shown in STATUS= until a reload succeeds
    public private(set) var reloadError: String?
    private var lastStatus = ""
    /// the pending `flush()` of `changed()`, and when the last one ran
    private var flushSource: EventSource?
    private var lastFlush: UInt64 = 0
    /// what `ringctl scale|start|stop` changed, kept across a restart of the daemon
    private var runtimeChangesStore: RuntimeChangesStore?
    private var sentReady = false
    /// for the D-Bus layer
    public var onStateChange: ((State) -> Void)?
    public var onReloaded: ((_ ok: Bool, _ message: String) -> Void)?
    /// extra observers of supervisor changes (the D-Bus layer)
    public var onChange: (() -> Void)?
    /// what systemd passed at start (socket units' fds, fd-store fds), until openSockets()
    private var passed: [(fd: Int32, name: String)]
    /// the listening sockets and where each came from (activation, fd store, bound)
    private var socketSet = SocketSet()
    /// drops the executable's clean pages after each quiet period (nil: off)
    public var workingSetTrim: WorkingSetTrim?

    public init(configPath: String, config: Config, loop: EventLoop, log: EventLog,
                environment: ChildEnvironment, passed: [(fd: Int32, name: String)]) {
        self.configPath = configPath
        self.loop = loop
        self.log = log
        self.passed = passed
        self.supervisor = Supervisor(config: config, loop: loop, log: log, environment: environment,
                                     limits: Daemon.limits(console: log.target == .console))
        supervisor.onChange = { [unowned self] in self.changed() }
    }

    /// What the core may do per step, and the open-file limit it checks instance counts against
    /// (after `ChildEnvironment.raiseFileLimit()`): per instance its pidfd, and in console mode
    /// the pipe its output is read from (the notify socket is one for all, the cgroup
    /// directory is closed once the process is in it).
    static func limits(console: Bool) -> StackLimits {
        var rl = rlimit()
        let files = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 && rl.rlim_cur != rlim_t.max
            ? Int(clamping: rl.rlim_cur) : nil
        return StackLimits(fileLimit: files, filesPerInstance: console ? 2 : 1, filesReserved: 256)
    }

    /// Refuses a config whose instances the open-file limit cannot hold.
    public func checkCapacity(of config: Config) throws(ControlError) {
        try supervisor.stack.checkCapacity(of: config)
    }

    /// Takes the sockets systemd passed, takes back the fd store's, binds (and stores) the rest.
    public func openSockets() throws {
        socketSet = try SocketSet.open(supervisor.config.sockets, passed: passed) { [log] in log.info("sockets", $0) }
        passed = []
        supervisor.sockets = socketSet.fds
    }

    /// Starts the autostart services and the watchdog.
    public func start() {
        do {
            if try loop.setWatchdog(true) {
                log.info("watchdog", "watchdog enabled: pinging systemd from the event loop")
            }
        } catch {
            log.error("watchdog", "cannot enable the watchdog: \(error)")
        }
        restoreRuntimeChanges()
        supervisor.start()
        changed()
    }

    /// Brings back what `ringctl scale|start|stop` changed before this daemon started (the
    /// core decides what still applies), before the first service starts.
    private func restoreRuntimeChanges() {
        do {
            let store = try RuntimeChangesStore.forConfig(configPath)
            runtimeChangesStore = store
            let (changes, problem) = store.load()
            if let problem { log.write(LogEvent(.warning, "runtime-changes", problem)) }
            for note in supervisor.restore(changes) {
                log.write(LogEvent(note.level == .info ? .info : .warning, note.event, note.message))
            }
        } catch {
            log.write(LogEvent(.warning, "runtime-changes", "runtime changes will not survive a restart: \(error)"))
        }
    }

    public func shutdown(then done: @escaping () -> Void) {
        guard state != .stopping else { return }
        setState(.stopping)
        workingSetTrim?.stop()
        _ = SystemdNotify.send("STOPPING=1\nSTATUS=stopping")
        supervisor.shutdown { [weak self] in
            // What is pending goes out before the loop ends (the last ServiceStateChanged).
            if let self, self.flushSource != nil {
                self.flushSource = nil
                self.flush()
            }
            done()
        }
    }

    /// Re-reads and validates the config; an invalid one changes nothing. Returns the config
    /// errors (or the summary of what changed).
    @discardableResult
    /// With `job`: the supervisor reports `onJobFinished(job, …)` once the changes (and the
    /// restarts they caused) are done — only for a reload that was applied.
    public func reload(job: JobID? = nil) -> Result<ReloadPlan, ConfigErrors> {
        guard state != .stopping else {
            return .failure(ConfigErrors([ConfigDiagnostic(SourceLocation(file: configPath, line: 1, column: 1),
                                                           ControlError.shuttingDown.description)]))
        }
        let previous = state
        setState(.reloading)
        _ = SystemdNotify.send("RELOADING=1\nMONOTONIC_USEC=\(loop.now)\nSTATUS=reloading")
        defer {
            setState(previous == .starting ? .starting : .running)
            if previous == .starting {
                sentReady = false // the first READY=1 still waits for every autostart service
            } else {
                // A reload is done once applied: READY=1 now, so `systemctl --user reload` returns
                // (it would wait forever for a service that never gets ready).
                _ = SystemdNotify.send("READY=1")
            }
            changed()
        }
        let new: Config
        do {
            new = try ConfigLoader.load(mainFile: configPath)
        } catch {
            let first = error.diagnostics.first.map(\.description) ?? "invalid config"
            reloadError = "reload failed: " + first + (error.diagnostics.count > 1 ? " (+\(error.diagnostics.count - 1) more)" : "")
            log.error("reload-failed", "reload of \(configPath) failed, nothing changed:\n\(error)")
            onReloaded?(false, error.description)
            return .failure(error)
        }
        let plan: ReloadPlan
        do {
            try supervisor.stack.checkCapacity(of: new)
            plan = try supervisor.apply(new, sockets: try reopenSockets(for: new), job: job)
        } catch {
            let message = "\(error)"
            reloadError = "reload failed: " + message
            log.error("reload-failed", "reload of \(configPath) failed, nothing changed: \(message)")
            let errors = ConfigErrors([ConfigDiagnostic(SourceLocation(file: configPath, line: 1, column: 1), message)])
            onReloaded?(false, message)
            return .failure(errors)
        }
        reloadError = nil
        log.info("reloaded", "reloaded \(configPath): \(plan)")
        onReloaded?(true, plan.description)
        return .success(plan)
    }

    /// Keeps the fds of sockets whose config did not change, binds (and stores) new ones (all
    /// or nothing), and drops those no longer configured (FDSTOREREMOVE, close).
    private func reopenSockets(for new: Config) throws -> [String: Int32] {
        _ = try socketSet.reload(to: new.sockets) { [log] in log.info("sockets", $0) }
        return socketSet.fds
    }

    private func setState(_ new: State) {
        guard new != state else { return }
        state = new
        onStateChange?(new)
    }

    /// Something ran that may have faulted in code (a bus message, a supervisor change): the
    /// working-set trim waits for the next quiet period.
    public func noteActivity() {
        workingSetTrim?.noteActivity()
    }

    /// After every change in the supervisor: STATUS=, and READY=1 once everything autostart settled.
    /// Coalesces the announcements of a burst of changes: STATUS=, READY=1 and the D-Bus
    /// layer's PropertiesChanged/ServiceStateChanged go out once the loop has nothing else
    /// ready (idle priority), as systemd's own bus queue does, and at most every 50 ms. A
    /// storm of 10,000 exits or spawns then costs a few PropertiesChanged a second, not one
    /// per step with a 10,000-pid array each (which kept dbus-daemon, and so the replies to
    /// every client, seconds behind).
    private func changed() {
        noteActivity()
        guard flushSource == nil else { return }
        let due = lastFlush &+ Daemon.flushInterval
        do {
            let run = { [weak self] in
                self?.flushSource = nil
                self?.flush()
            }
            let source: EventSource
            if loop.now >= due {
                source = try loop.onDefer(handler: run)
                try source.setPriority(100) // SD_EVENT_PRIORITY_IDLE
            } else {
                source = try loop.timer(at: due, accuracy: 5_000, handler: run)
            }
            flushSource = source
        } catch {
            flush()
        }
    }

    private static let flushInterval: UInt64 = 50_000 // µs

    private func flush() {
        lastFlush = loop.now
        let status = statusText()
        var message = ""
        if status != lastStatus {
            lastStatus = status
            message += "STATUS=\(status)\n"
        }
        if !sentReady && state != .stopping && state != .reloading && supervisor.isSettled {
            sentReady = true
            if state == .starting {
                setState(.running)
                log.info("ready", "ready: \(status)")
            }
            message += "READY=1\n"
        }
        if !message.isEmpty { _ = SystemdNotify.send(message) }
        if let problem = runtimeChangesStore?.save(supervisor.stack) {
            log.write(LogEvent(.warning, "runtime-changes", problem))
        }
        onChange?()
    }

    /// "5 running, 1 failed (db)"; "no services"; with a failed reload first.
    public func statusText() -> String {
        var counts: [ServiceState: [String]] = [:]
        for slot in supervisor.services { counts[slot.machine.state, default: []].append(slot.name) }
        var parts: [String] = []
        for state in [ServiceState.running, .starting, .backoff, .stopping, .exited, .stopped] {
            if let names = counts[state] { parts.append("\(names.count) \(state.rawValue)") }
        }
        if let failed = counts[.failed] {
            let names = failed.prefix(3).joined(separator: ", ") + (failed.count > 3 ? ", …" : "")
            parts.append("\(failed.count) failed (\(names))")
        }
        var text = parts.isEmpty ? "no services" : parts.joined(separator: ", ")
        for slot in supervisor.services {
            if let why = supervisor.stack.entry(named: slot.name)?.lastRollback { text += "; \(slot.name) rolled back: \(why)" }
        }
        if state == .stopping { text = "stopping: " + text }
        if let e = reloadError { text = e + "; " + text }
        return text
    }
}
