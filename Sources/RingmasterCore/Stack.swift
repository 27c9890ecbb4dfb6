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

    public var description: String {
        switch self {
        case let .noSuchService(name): return "no service named \(quotedForMessage(name))"
        case let .invalidArgument(message), let .failed(message): return message
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

    public init(workPerStep: Int = 32, maximumInstances: Int = ServiceConfig.maximumInstances,
                fileLimit: Int? = nil, filesPerInstance: Int = 3, filesReserved: Int = 256) {
        self.workPerStep = max(1, workPerStep); self.maximumInstances = maximumInstances
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
    /// removed by a reload, still stopping; dropped once down
    public internal(set) var retiring = false
    /// to be stopped once every service after it is down (shutdown, removal)
    public internal(set) var pendingStop = false
    public internal(set) var rolling: RollingRestart? = nil
    /// the state last reported (`serviceStateChanged`)
    public internal(set) var reportedState: ServiceState = .stopped

    public var name: String { machine.name }
    public var state: ServiceState { machine.state }
    /// The instances the service is meant to have (not counting a rolling restart's extra one).
    public var instancesWanted: Int { rolling?.target ?? machine.wantedInstances }
}

public struct Stack: Equatable, Sendable {
    public private(set) var config: Config
    public let limits: StackLimits
    /// every entry, current config order first, then the retiring ones
    public private(set) var entries: [StackEntry] = []
    public private(set) var graph: DependencyGraph
    public private(set) var shuttingDown = false
    private var shutdownReported = false
    private var nextID = 1
    private var position: [ServiceID: Int] = [:]
    var current: [String: ServiceID] = [:]
    /// instance commands waiting for their turn (bounded work per step)
    private var backlog = Backlog()
    /// the entries a step touched, in order, for state reports
    private var touched: [ServiceID] = []
    private var touchedSet = Set<ServiceID>()
    private var awaiting = 0
    private var stopping = 0

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
        guard position[id] != nil else { return out }
        feed(event, to: id, instance: instance, now: now, into: &out)
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
        entries.append(StackEntry(id: allocateID(), machine: newMachine(service)))
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

    mutating func markShuttingDown() { shuttingDown = true }

    // MARK: - the end of every step

    mutating func finish(now: USec, draining: Bool = true, into out: inout [StackAction]) {
        var budget = draining ? limits.workPerStep : 0
        var progressed = true
        while progressed {
            progressed = false
            // What an event settled is told before what it lets happen ("db: starting ->
            // running" before "app.0 started"); a service with work queued by this step is
            // told after that work ("web.0: running -> stopping" before "web: running -> stopping").
            report(skippingQueued: true, into: &out)
            if awaiting > 0 && !shuttingDown { progressed = startSettled(into: &out) || progressed }
            if stopping > 0 { progressed = stopUnblocked(into: &out) || progressed }
            progressed = advanceRollingRestarts(now: now, into: &out) || progressed
            progressed = drain(budget: &budget, now: now, into: &out) || progressed
            progressed = removeRetired(into: &out) || progressed
        }
        report(skippingQueued: false, into: &out)
        if !backlog.isEmpty { out.append(.continueLater) }
        if shuttingDown, !shutdownReported, backlog.isEmpty, isDown {
            shutdownReported = true
            out.append(.shutdownComplete)
        }
    }

    /// Starts what waits on dependencies that are now settled; a service whose dependency
    /// failed shows it (`dependency db failed`) until that dependency is started again.
    private mutating func startSettled(into out: inout [StackAction]) -> Bool {
        var progressed = false
        for p in entries.indices where entries[p].machine.awaitingDependencies {
            let id = entries[p].id
            var failed: String? = nil
            var waiting = false
            for name in graph.dependencies(of: entries[p].name) {
                guard let dep = entry(named: name) else { continue }
                if dep.state == .failed, dep.machine.wanted { failed = failed ?? name }
                if !dep.machine.isSettled { waiting = true }
            }
            let reason = failed.map { "dependency \($0) failed" }
            if entries[p].machine.dependencyFailure != reason {
                if let reason {
                    out.append(.note(id, StackNote(.warning, "dependency-failed",
                                                   "\(entries[p].name): not started: \(reason)")))
                }
                entries[p].machine.dependencyFailure = reason
                touch(id)
            }
            guard !waiting, reason == nil else { continue }
            setAwaiting(id, false)
            enqueue(.startRequested, id, instances: 0..<entries[p].machine.instances.count)
            progressed = true
        }
        return progressed
    }

    /// Stops what waits only on its dependents being down (shutdown, removal), dependents first.
    private mutating func stopUnblocked(into out: inout [StackAction]) -> Bool {
        var progressed = false
        for id in stopOrder() {
            guard let p = position[id], entries[p].pendingStop else { continue }
            guard dependentsForStop(of: entries[p]).allSatisfy({ e in !e.pendingStop && e.machine.isDown }) else { continue }
            setPendingStop(id, false)
            beginStop(id)
            progressed = true
        }
        return progressed
    }

    /// Wants the entry down now: every instance is told to stop, highest number first.
    mutating func beginStop(_ id: ServiceID) {
        purgeBacklog(of: id)
        setAwaiting(id, false)
        update(id) { e in
            e.machine.wanted = false
            e.machine.dependencyFailure = nil
        }
        guard let e = entry(id) else { return }
        enqueue(.stopRequested, id, instances: e.machine.instances.indices.reversed())
    }

    /// Retiring entries first (their dependents, if any, are retiring too), then the current
    /// ones, dependents before their dependencies.
    private func stopOrder() -> [ServiceID] {
        var order = entries.reversed().filter(\.retiring).map(\.id)
        for name in graph.stopOrder { if let id = current[name] { order.append(id) } }
        return order
    }

    private func dependentsForStop(of entry: StackEntry) -> [StackEntry] {
        var list: [StackEntry] = []
        if !entry.retiring {
            for name in graph.dependents(of: entry.name) {
                if let e = self.entry(named: name), e.id != entry.id { list.append(e) }
            }
        }
        for e in entries where e.retiring && e.id != entry.id && e.machine.config.after.contains(entry.name) {
            list.append(e)
        }
        return list
    }

    /// Feeds queued instance commands while the step's budget lasts.
    private mutating func drain(budget: inout Int, now: USec, into out: inout [StackAction]) -> Bool {
        var progressed = false
        while budget > 0, let item = backlog.pop() {
            guard let p = position[item.id], entries[p].machine.instances.indices.contains(item.instance) else { continue }
            if item.event == .startRequested || item.event == .restartRequested {
                // stale: scaled away meanwhile, or no longer wanted
                if item.instance >= entries[p].machine.wantedInstances || !entries[p].machine.wanted { continue }
            }
            feed(item.event, to: item.id, instance: item.instance, now: now, into: &out)
            budget -= 1
            progressed = true
        }
        return progressed
    }

    private mutating func removeRetired(into out: inout [StackAction]) -> Bool {
        let gone = entries.filter { $0.retiring && !$0.pendingStop && $0.machine.isDown }
        guard !gone.isEmpty else { return false }
        for e in gone {
            report(e.id, into: &out)
            out.append(.note(e.id, StackNote(.info, "removed", "\(e.name): removed")))
            out.append(.serviceRemoved(e))
        }
        let ids = Set(gone.map(\.id))
        entries.removeAll { ids.contains($0.id) }
        touched.removeAll { ids.contains($0) }
        touchedSet.subtract(ids)
        reindex()
        return true
    }

    /// Reports the touched entries whose state changed since last reported. An entry with a
    /// spawn under way (the runtime feeds its result back before anything else happens) is
    /// reported with that result: a restart goes `backoff -> running`, not through `starting`.
    private mutating func report(skippingQueued: Bool, into out: inout [StackAction]) {
        guard !touched.isEmpty else { return }
        let ids = touched
        touched.removeAll(keepingCapacity: true)
        touchedSet.removeAll(keepingCapacity: true)
        for id in ids {
            guard let p = position[id] else { continue }
            if (skippingQueued && backlog.count(of: id) > 0) || entries[p].machine.isSpawning {
                touch(id)
            } else {
                report(id, into: &out)
            }
        }
    }

    private mutating func report(_ id: ServiceID, into out: inout [StackAction]) {
        guard let p = position[id] else { return }
        let state = entries[p].machine.state
        let old = entries[p].reportedState
        guard state != old else { return }
        entries[p].reportedState = state
        out.append(.serviceStateChanged(id, from: old, to: state))
    }
}

/// A FIFO of instance commands (an array with a moving head: no per-item allocation), with
/// a count per entry.
struct Backlog: Equatable, Sendable {
    struct Item: Equatable, Sendable {
        var id: ServiceID
        var instance: Int
        var event: InstanceEvent
    }
    private var items: [Item] = []
    private var head = 0
    private var queued: [ServiceID: Int] = [:]

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    func count(of id: ServiceID) -> Int { queued[id] ?? 0 }

    mutating func push(_ item: Item) {
        items.append(item)
        queued[item.id, default: 0] += 1
    }

    mutating func pop() -> Item? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
        if let n = queued[item.id] { queued[item.id] = n > 1 ? n - 1 : nil }
        return item
    }

    mutating func remove(_ id: ServiceID) {
        guard queued.removeValue(forKey: id) != nil else { return }
        items.removeSubrange(0..<head)
        head = 0
        items.removeAll { $0.id == id }
    }

    mutating func removeAll() { items.removeAll(); head = 0; queued.removeAll() }
}

/// At most ~256 bytes of user input, quoted, for a message: a 20 MB name gives no 20 MB reply.
public func quotedForMessage(_ text: String, limit: Int = 256) -> String {
    if text.utf8.count <= limit { return "\"\(text)\"" }
    var cut = text.utf8.prefix(limit)
    while !cut.isEmpty, String(cut) == nil { cut = cut.dropLast() }
    return "\"\(String(decoding: cut, as: UTF8.self))…\" (\(text.utf8.count) bytes)"
}
