// The whole supervision policy of a stack, as one value: every service entry (its machine,
// whether it waits for dependencies or for its dependents to stop, whether a reload removed
// it, its rolling restart), one dependency graph, the command rules, and the batches that keep
// any one step small. Commands, a reload and process/timer events go in, with `now`; actions
// come out, for the runtime to perform. No I/O, no clock, no Glibc.
//
// Every entry point ends in `finish`, which settles what the step made possible (starts
// whose dependencies are now settled, stops whose dependents are now down, rolling restarts'
// next steps, removals), drains at most `limits.workPerStep` instance commands from the
// backlog, and reports each service whose state changed.

/// A service entry's identity: stable while the entry lives. A service removed by a reload
/// and added again under the same name is a new entry, while the old one may still stop.
public struct ServiceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let raw: Int
    public init(_ raw: Int) { self.raw = raw }
    public static func < (a: ServiceID, b: ServiceID) -> Bool { a.raw < b.raw }
    public var description: String { "#\(raw)" }
}

/// Why a command was refused (`BusService` maps each case to its D-Bus error name).
public enum CommandError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSuchService(String)
    case invalidArgument(String)
    case failed(String)
    /// `reload NAME` of a service without `reload-signal`
    case noReloadSignal(String)

    /// Every command, and a reload, once shutdown has begun.
    public static let shuttingDown = CommandError.failed("ringmasterd is shutting down")

    /// One line. (It may quote a caller's input whole: a D-Bus error cuts what it sends,
    /// `BusError`.)
    public var description: String {
        switch self {
        case let .noSuchService(name): return "no service named \"\(name)\""
        case let .invalidArgument(message), let .failed(message): return message
        case let .noReloadSignal(name):
            return "\(name) has no reload-signal: set reload-signal (e.g. \"HUP\") in [services.\(name)] "
                + "to reload it without a restart, or restart it"
        }
    }
}

/// A line for the daemon's log that is a decision of the stack's (not an instance's).
public struct StackNote: Equatable, Sendable {
    public enum Level: Equatable, Sendable { case info, warning, error }
    public var level: Level
    /// the RINGMASTER_EVENT name: "rolling-restart", "dependency-failed", "removed"
    public var event: String
    public var message: String
    public init(_ level: Level, _ event: String, _ message: String) {
        self.level = level; self.event = event; self.message = message
    }
}

public enum StackAction: Equatable, Sendable {
    /// perform an instance's action (spawn, signal, killAll, timers; stateChanged and gaveUp are for the log)
    case instance(ServiceID, Int, InstanceAction)
    case serviceStateChanged(ServiceID, from: ServiceState, to: ServiceState)
    /// a reload added this entry: the runtime makes room for its resources
    case serviceAdded(ServiceID)
    /// a removed service's last process is gone: the entry (as it was last) is gone, free its resources
    case serviceRemoved(StackEntry)
    case note(ServiceID?, StackNote)
    /// more batched work is waiting: call `continueWork(now:)` in a later loop iteration
    case continueLater
    /// shutdown is complete: every process is gone
    case shutdownComplete
    /// a rolling restart's canary did not become ready: it went, the old instances serve on;
    /// `configRestored`: it was a reload's, and the service keeps its old config
    case rolledBack(ServiceID, reason: String, configRestored: Bool)
    /// a command given with a job id is done (its result, for the client waiting on it)
    case jobFinished(JobID, JobResult)
}

/// What the stack may ask of one step, and what the host allows.
public struct StackLimits: Equatable, Sendable {
    /// instance commands (each may spawn or signal) drained from the backlog per step
    public var workPerStep: Int
    /// the most instances one service may have (as a config file may ask)
    public var maximumInstances: Int
    /// open-file limit of the daemon, the descriptors each instance holds, and those the
    /// daemon keeps for itself; nil: not checked
    public var fileLimit: Int?
    public var filesPerInstance: Int
    public var filesReserved: Int
    /// Instances told to stop and not yet down, at most, before the backlog sends more stop
    /// signals: each stopped process comes back as an exit to reap, and thousands at once
    /// are thousands of events ready in one loop iteration. The exits drive the rest.
    public var maximumStopping: Int

    public init(workPerStep: Int = 4, maximumInstances: Int = ServiceConfig.maximumInstances,
                fileLimit: Int? = nil, filesPerInstance: Int = 3, filesReserved: Int = 256,
                maximumStopping: Int = 64) {
        self.workPerStep = max(1, workPerStep); self.maximumInstances = maximumInstances
        self.maximumStopping = max(1, maximumStopping)
        self.fileLimit = fileLimit; self.filesPerInstance = max(1, filesPerInstance); self.filesReserved = filesReserved
    }

    /// How many instances the whole stack may run at once (a rolling restart's extra one included).
    public var instanceCapacity: Int? {
        fileLimit.map { max(0, ($0 - filesReserved) / filesPerInstance) }
    }
}

public struct StackEntry: Equatable, Sendable {
    public let id: ServiceID
    public internal(set) var machine: ServiceMachine
    /// the service as the config files say (the machine's instance count may differ: a scale
    /// command lasts until a reload changes this service's config)
    public internal(set) var configured: ServiceConfig
    /// removed by a reload, still stopping; dropped once down
    public internal(set) var retiring = false
    /// to be stopped once every service after it is down (shutdown, removal)
    public internal(set) var pendingStop = false
    public internal(set) var rolling: RollingRestart? = nil
    /// memory restarts: instances due, in order, and the one being replaced (StackMemoryRestart.swift)
    public internal(set) var memoryRestarts = MemoryRestarts()
    /// the state last reported (`serviceStateChanged`)
    public internal(set) var reportedState: ServiceState = .stopped
    /// why its last rolling restart was rolled back (nil once one succeeds or begins)
    public internal(set) var lastRollback: String? = nil

    public var name: String { machine.name }
    public var state: ServiceState { machine.state }
    /// The instances the service is meant to have (not counting a rolling restart's extra one).
    public var instancesWanted: Int { rolling?.target ?? machine.wantedInstances }
}

public struct Stack: Equatable, Sendable {
    public private(set) var config: Config
    public let limits: StackLimits
    /// every entry, current config order first, then the retiring ones
    public internal(set) var entries: [StackEntry] = []
    public private(set) var graph: DependencyGraph
    public internal(set) var shuttingDown = false
    var shutdownReported = false
    var nextID = 1
    var position: [ServiceID: Int] = [:]
    var current: [String: ServiceID] = [:]
    /// instance commands waiting for their turn (bounded work per step)
    var backlog = Backlog()
    /// the entries a step touched, in order, for state reports
    var touched: [ServiceID] = []
    var touchedSet = Set<ServiceID>()
    var awaiting = 0
    var stopping = 0
    /// commands followed until done (`StackJobs.swift`), and the entries a step touched for them
    var jobs: [Job] = []
    var jobTouched = Set<ServiceID>()
    var jobsAdded = false

    public init(config: Config, limits: StackLimits = StackLimits()) {
        self.config = config
        self.limits = limits
        self.graph = DependencyGraph(config)
        for service in config.services { append(service) }
        reindex()
    }

    // MARK: - lookups

    /// A service of the current config by name (not one a reload removed).
    public func entry(named name: String) -> StackEntry? { current[name].flatMap { entry($0) } }

    public func entry(_ id: ServiceID) -> StackEntry? { position[id].map { entries[$0] } }

    /// One instance's state, without a copy of the entry (which, kept across a change, would
    /// make the change copy every instance).
    public func instanceState(_ id: ServiceID, _ index: Int) -> InstanceState? {
        guard let p = position[id], entries[p].machine.instances.indices.contains(index) else { return nil }
        return entries[p].machine.instances[index].state
    }

    /// The reason an instance's process ending now with `status` reports (before the exit is
    /// handled: the journal entry of the exit carries it). Nil for an unknown instance.
    public func exitReason(_ id: ServiceID, _ index: Int, for status: ExitStatus) -> ExitReason? {
        guard let p = position[id], entries[p].machine.instances.indices.contains(index) else { return nil }
        return entries[p].machine.instances[index].exitReason(for: status)
    }

    /// The entries of the current config, in config order.
    public var services: [StackEntry] { entries.filter { !$0.retiring } }

    /// Work is waiting in the backlog.
    public var hasBacklog: Bool { !backlog.isEmpty }

    /// Every wanted service settled or failed, nothing waiting: what READY=1 waits for.
    public var isSettled: Bool {
        backlog.isEmpty && entries.allSatisfy { e in
            e.retiring || !e.machine.wanted || e.machine.isSettled || e.state == .failed
        }
    }

    /// Settled for the services `after` it (`ServiceMachine.isSettled`), with no command of
    /// its own still queued: nothing more will happen to it without a new command or event.
    /// A rolling restart under way is a change in progress too.
    public func isSettled(_ e: StackEntry) -> Bool {
        e.machine.isSettled && backlog.count(of: e.id) == 0 && (e.rolling == nil || !e.machine.wanted)
    }

    /// Instances sent their stop signal whose process is not yet gone, over the whole stack.
    public var stoppingInstances: Int { entries.reduce(0) { $0 + $1.machine.stopping } }

    /// Every process gone (after a shutdown).
    public var isDown: Bool { entries.allSatisfy { !$0.pendingStop && $0.machine.isDown } }

    func require(_ name: String) throws(CommandError) -> ServiceID {
        guard let id = current[name] else { throw .noSuchService(name) }
        return id
    }

    // MARK: - events

    /// A process or timer event of one instance.
    public mutating func handle(_ event: InstanceEvent, service id: ServiceID, instance: Int, now: USec) -> [StackAction] {
        var out: [StackAction] = []
        guard let p = position[id] else { return out }
        // A service that is not wanted never comes back: an instance whose stop is still
        // queued behind a batch, and that crashed meanwhile, is stopped when its delay is over.
        // (Read in place: a copy of the entry alive across `feed` would copy every instance.)
        var event = event == .timerFired(.restart) && !entries[p].machine.wanted ? .stopRequested : event
        // While the daemon shuts down, watchdogs are off: every instance is being stopped in
        // dependency order (SIGKILL after stop-timeout), and an abort would stop one early.
        if shuttingDown && (event == .timerFired(.watchdog) || event == .watchdog(.trigger)) { event = .watchdog(.period(0)) }
        feed(event, to: id, instance: instance, now: now, into: &out)
        if entries[p].machine.config.memoryRestart != nil { stepMemoryRestarts(id, instance: instance, now: now, into: &out) }
        // A spawn's result belongs to the step that asked for the spawn: it drains nothing
        // more, or a batch would go on spawn by spawn within one loop iteration.
        switch event {
        case .spawned, .spawnFailed: finish(now: now, draining: false, into: &out)
        default: finish(now: now, into: &out)
        }
        return out
    }

    /// The next batch of backlogged work (after `continueLater`).
    public mutating func continueWork(now: USec) -> [StackAction] {
        var out: [StackAction] = []
        finish(now: now, into: &out)
        return out
    }

    // MARK: - internals shared by commands, reload and events

    mutating func update(_ id: ServiceID, _ body: (inout StackEntry) -> Void) {
        guard let p = position[id] else { return }
        body(&entries[p])
        touch(id)
    }

    mutating func touch(_ id: ServiceID) {
        if touchedSet.insert(id).inserted { touched.append(id) }
        if !jobs.isEmpty { jobTouched.insert(id) }
    }

    mutating func feed(_ event: InstanceEvent, to id: ServiceID, instance: Int, now: USec, into out: inout [StackAction]) {
        guard let p = position[id] else { return }
        let actions = entries[p].machine.handle(event, instance: instance, now: now)
        touch(id)
        for a in actions { out.append(.instance(id, instance, a)) }
    }

    mutating func enqueue(_ event: InstanceEvent, _ id: ServiceID, instances: some Sequence<Int>) {
        for i in instances { backlog.push(Backlog.Item(id: id, instance: i, event: event)) }
    }

    /// Drops the entry's queued instance commands (a newer command supersedes them).
    mutating func purgeBacklog(of id: ServiceID) { backlog.remove(id) }

    /// Instance commands of the entry waiting in the backlog.
    public func queuedWork(of id: ServiceID) -> Int { backlog.count(of: id) }

    mutating func purgeBacklog() { backlog.removeAll() }

    mutating func append(_ service: ServiceConfig) {
        entries.append(StackEntry(id: allocateID(), machine: newMachine(service), configured: service))
    }

    mutating func allocateID() -> ServiceID {
        defer { nextID += 1 }
        return ServiceID(nextID)
    }

    /// A new service's machine: an autostart one is wanted, behind its dependencies.
    func newMachine(_ service: ServiceConfig) -> ServiceMachine {
        var machine = ServiceMachine(config: service)
        if service.autostart && !shuttingDown { machine.wanted = true; machine.awaitingDependencies = true }
        return machine
    }

    mutating func replaceEntries(_ new: [StackEntry]) {
        entries = new
        reindex()
    }

    mutating func reindex() {
        position = [:]
        current = [:]
        awaiting = 0
        stopping = 0
        for (i, e) in entries.enumerated() {
            position[e.id] = i
            if !e.retiring { current[e.name] = e.id }
            if e.machine.awaitingDependencies { awaiting += 1 }
            if e.pendingStop { stopping += 1 }
        }
    }

    mutating func replaceConfig(_ new: Config) {
        config = new
        graph = DependencyGraph(new)
    }

    mutating func setAwaiting(_ id: ServiceID, _ value: Bool) {
        guard let p = position[id], entries[p].machine.awaitingDependencies != value else { return }
        entries[p].machine.awaitingDependencies = value
        awaiting += value ? 1 : -1
        touch(id)
    }

    mutating func setPendingStop(_ id: ServiceID, _ value: Bool) {
        guard let p = position[id], entries[p].pendingStop != value else { return }
        entries[p].pendingStop = value
        stopping += value ? 1 : -1
        touch(id)
    }

}
