import Glibc
import RingmasterCore
import Systemd

/// The outcome of a reload, as `BusService.reload()` reports it (Reloaded signal, the
/// Reload method's reply).
public enum ReloadOutcome: Sendable {
    /// the new config is in effect; the message says what changed
    case applied(String)
    /// the file was rejected whole; nothing changed
    case invalid(ConfigErrors)
    /// it could not be read or applied
    case failed(String)
}

/// ringmasterd's control plane: the io.ringmaster.Ringmaster1 API on the user bus.
///
/// Exports the Manager object and one Service object per service (a fallback vtable with
/// a node enumerator, so they appear and disappear with the config), drives the
/// `Supervisor` for the methods, and turns the supervisor's changes into signals and
/// PropertiesChanged. Everything runs on the supervisor's loop.
///
/// Wiring (ringmasterd): create it after the Supervisor (and after setting the
/// supervisor's `onChange`: this chains onto it), before `supervisor.start()`:
///
///     let control = try BusService(supervisor: supervisor, bus: try Bus.user())
///     control.reloadHandler = { … }   // the daemon's reload; SIGHUP calls control.reload()
public final class BusService {
    public let bus: Bus
    public let supervisor: Supervisor
    /// rolling restarts under way; the daemon's reload may use them for changed services
    public let rollingRestarts: RollingRestarts
    /// Parses, validates and applies the config (nil: reload is not available).
    public var reloadHandler: (() -> ReloadOutcome)?

    /// Who may call mutating methods: this euid and root.
    let ownerUID: uid_t = geteuid()

    private var exported: [BusSlot] = []
    private var snapshots: [String: ServiceSnapshot] = [:]
    private var daemonState: DaemonState = .starting
    private var reloading = false
    private var lastEmitError: String?

    /// Exports the objects on `bus`, attaches it to the supervisor's loop, and takes the
    /// name io.ringmaster.Ringmaster1 (last, so no client sees the name without objects).
    public init(supervisor: Supervisor, bus: Bus) throws {
        self.bus = bus
        self.supervisor = supervisor
        self.rollingRestarts = RollingRestarts(supervisor: supervisor)
        exported.append(try bus.addObject(path: RingmasterBus.managerPath, interface: managerInterface()))
        exported.append(try bus.addFallback(prefix: RingmasterBus.servicePathPrefix, interface: serviceInterface()) {
            [unowned self] path in self.slot(at: path) != nil
        })
        exported.append(try bus.addNodeEnumerator(prefix: RingmasterBus.servicePathPrefix) { [unowned self] _ in
            self.supervisor.slots.map { BusService.path(of: $0.name) }
        })
        exported.append(try bus.addObjectManager(path: RingmasterBus.managerPath))
        try bus.attach(to: supervisor.loop)

        for slot in supervisor.slots { snapshots[slot.name] = ServiceSnapshot(slot, self) }
        daemonState = currentDaemonState()
        let previous = supervisor.onChange
        supervisor.onChange = { [weak self] in
            previous?()
            self?.supervisorChanged()
        }
        try bus.requestName(RingmasterBus.name)
    }

    deinit {
        bus.detachFromLoop()
    }

    // MARK: - names and lookups

    public static func path(of service: String) -> String {
        Bus.encodePath(prefix: RingmasterBus.servicePathPrefix, service)
    }

    func slot(at path: String) -> ServiceSlot? {
        Bus.decodePath(prefix: RingmasterBus.servicePathPrefix, path).flatMap { supervisor.slot(named: $0) }
    }

    func requireSlot(at path: String) throws -> ServiceSlot {
        guard let slot = slot(at: path) else {
            let name = Bus.decodePath(prefix: RingmasterBus.servicePathPrefix, path) ?? path
            throw BusError(RingmasterBus.ErrorName.noSuchService, "no service named \"\(name)\"")
        }
        return slot
    }

    /// The instances the service is meant to have (not counting a rolling restart's extra one).
    func wantedInstances(_ slot: ServiceSlot) -> Int {
        rollingRestarts.targetInstances(of: slot.name) ?? slot.machine.wantedInstances
    }

    // MARK: - commands (shared by the Manager and Service objects)

    /// Mutating calls: the sender's euid, from the bus, must be ours or root.
    func authorize(_ call: BusCall) throws {
        let uid: uid_t
        do {
            uid = try call.message.senderEUID()
        } catch {
            throw BusError(RingmasterBus.ErrorName.accessDenied, "cannot tell who is calling: \(error)")
        }
        guard uid == ownerUID || uid == 0 else {
            throw BusError(RingmasterBus.ErrorName.accessDenied,
                           "uid \(uid) may not control the ringmasterd of uid \(ownerUID)")
        }
    }

    /// Runs a supervisor command, mapping its refusal to the API's error names.
    func command(_ call: BusCall, _ body: () throws(ControlError) -> Void) throws -> [BusValue] {
        try authorize(call)
        do {
            try body()
        } catch {
            throw BusService.busError(error)
        }
        return []
    }

    static func busError(_ error: ControlError) -> BusError {
        switch error {
        case .noSuchService: return BusError(RingmasterBus.ErrorName.noSuchService, error.description)
        case .invalidArgument: return BusError(RingmasterBus.ErrorName.invalidArgument, error.description)
        case .failed: return BusError(RingmasterBus.ErrorName.failed, error.description)
        }
    }

    func start(_ name: String) throws(ControlError) {
        try supervisor.startService(name)
    }

    func stop(_ name: String) throws(ControlError) {
        _ = try supervisor.requireSlot(name)
        rollingRestarts.cancel(name, scaleBack: true)
        try supervisor.stopService(name)
    }

    func restart(_ name: String) throws(ControlError) {
        try rollingRestarts.restart(name)
    }

    func scale(_ name: String, _ count: UInt32) throws(ControlError) {
        _ = try supervisor.requireSlot(name)
        guard count >= 1, count <= UInt32(maximumScaledInstances) else {
            throw .invalidArgument("instances must be between 1 and \(maximumScaledInstances), not \(count) (to stop every instance, stop the service)")
        }
        rollingRestarts.cancel(name, scaleBack: false)
        try supervisor.scaleService(name, to: Int(count))
    }

    func kill(_ name: String, _ signal: Int32) throws(ControlError) {
        try supervisor.killService(name, signal: signal)
    }

    /// Reloads through `reloadHandler` and reports it (Reloaded signal, State property).
    /// SIGHUP should come here too, so every reload is announced the same way.
    @discardableResult
    public func reload() -> ReloadOutcome {
        guard let handler = reloadHandler else {
            let outcome = ReloadOutcome.failed("reload is not supported by this ringmasterd")
            emit("Reloaded", [.bool(false), .string("reload is not supported by this ringmasterd")])
            return outcome
        }
        reloading = true
        supervisorChanged()
        let outcome = handler()
        reloading = false
        supervisorChanged()
        switch outcome {
        case let .applied(message): emit("Reloaded", [.bool(true), .string(message)])
        case let .invalid(errors): emit("Reloaded", [.bool(false), .string(errors.description)])
        case let .failed(message): emit("Reloaded", [.bool(false), .string(message)])
        }
        return outcome
    }

    // MARK: - change notification

    /// The daemon's state (Manager.State).
    enum DaemonState: String {
        case starting, running, reloading, stopping
    }

    var state: DaemonState { daemonState }

    private func currentDaemonState() -> DaemonState {
        if supervisor.isShuttingDown { return .stopping }
        if reloading { return .reloading }
        if daemonState == .starting {
            let settled = supervisor.slots.allSatisfy { !$0.pendingStart && ($0.machine.isSettled || !$0.machine.wanted) }
            return settled ? .running : .starting
        }
        return .running
    }

    /// After every change of the supervisor: signals for processes and service states,
    /// PropertiesChanged for what differs from the last snapshot, objects added/removed.
    func supervisorChanged() {
        rollingRestarts.supervisorChanged()

        let newState = currentDaemonState()
        if newState != daemonState {
            daemonState = newState
            emitPropertiesChanged(RingmasterBus.managerPath, RingmasterBus.managerInterface, ["State"])
        }

        var seen = Set<String>()
        for slot in supervisor.slots {
            let name = slot.name
            seen.insert(name)
            let new = ServiceSnapshot(slot, self)
            guard let old = snapshots[name] else {
                snapshots[name] = new
                do { try bus.emitObjectAdded(path: BusService.path(of: name)) } catch { noteEmitError(error) }
                emit("ServiceStateChanged", [.string(name), .string(new.state)])
                continue
            }
            guard new != old else { continue }
            snapshots[name] = new
            for (instance, pid) in old.pids.sorted(by: { $0.key < $1.key }) where new.pids[instance] != pid {
                let exit = new.exits[instance] ?? nil
                emit("ProcessExited", [.string(name), .uint32(UInt32(instance)), .uint32(UInt32(bitPattern: pid)),
                                       .string(exit?.code.rawValue ?? "unknown"), .int32(exit?.status ?? 0)])
            }
            for (instance, pid) in new.pids.sorted(by: { $0.key < $1.key }) where old.pids[instance] != pid {
                emit("ProcessStarted", [.string(name), .uint32(UInt32(instance)), .uint32(UInt32(bitPattern: pid))])
            }
            let changed = new.properties.keys.filter { new.properties[$0] != old.properties[$0] }.sorted()
            emitPropertiesChanged(BusService.path(of: name), RingmasterBus.serviceInterface, changed)
            if new.state != old.state {
                emit("ServiceStateChanged", [.string(name), .string(new.state)])
            }
        }
        for name in snapshots.keys where !seen.contains(name) {
            snapshots[name] = nil
            // The object is gone already, so sd_bus_emit_object_removed cannot list its
            // interfaces: say it ourselves.
            let interfaces = [RingmasterBus.serviceInterface, "org.freedesktop.DBus.Properties",
                              "org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer"]
            do {
                try bus.emitSignal(path: RingmasterBus.managerPath, interface: "org.freedesktop.DBus.ObjectManager",
                                   member: "InterfacesRemoved",
                                   [.objectPath(BusService.path(of: name)), .strings(interfaces)])
            } catch { noteEmitError(error) }
        }
    }

    func emit(_ signal: String, _ values: [BusValue]) {
        do {
            try bus.emitSignal(path: RingmasterBus.managerPath, interface: RingmasterBus.managerInterface,
                               member: signal, values)
        } catch { noteEmitError(error) }
    }

    private func emitPropertiesChanged(_ path: String, _ interface: String, _ names: [String]) {
        do { try bus.emitPropertiesChanged(path: path, interface: interface, names) } catch { noteEmitError(error) }
    }

    /// Logs a failure to emit once (not once per event, should the bus be gone).
    private func noteEmitError(_ error: Error) {
        let text = "\(error)"
        guard text != lastEmitError else { return }
        lastEmitError = text
        supervisor.log.write(LogEvent(.warning, "dbus", "D-Bus: \(text)"))
    }
}

/// What clients were last told about a service: the values of its emits-change properties
/// and its instances' pids (for ProcessStarted/ProcessExited).
struct ServiceSnapshot: Equatable {
    var properties: [String: BusValue]
    var pids: [Int: Int32]
    var exits: [Int: ExitStatus?]

    var state: String { properties["State"]?.string ?? "" }

    init(_ slot: ServiceSlot, _ service: BusService) {
        properties = [:]
        for property in BusService.serviceProperties where property.change == .emitsChange {
            properties[property.name] = property.value(slot, service)
        }
        pids = [:]
        exits = [:]
        for instance in slot.machine.instances {
            if let pid = instance.pid { pids[instance.index] = pid }
            exits[instance.index] = instance.lastExit
        }
    }
}
