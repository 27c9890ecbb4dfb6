import Glibc
import RingmasterCore
import Systemd

/// ringmasterd's control plane: the io.ringmaster.Ringmaster1 API on the user bus.
///
/// Exports the Manager object and one Service object per service (a fallback vtable with
/// a node enumerator, so they appear and disappear with the config), drives the
/// `Supervisor` for the methods and the `Daemon` for Reload and State, and turns their
/// changes into signals and PropertiesChanged. Everything runs on the daemon's loop.
///
/// Wiring (ringmasterd): after the Daemon is created, before `daemon.start()`:
///
///     let control = try BusService(daemon: daemon, bus: try Bus.user())
///
/// It chains onto `daemon.onChange`, `daemon.onStateChange` and `daemon.onReloaded`, so
/// a reload by SIGHUP is announced (Reloaded) like one by D-Bus.
public final class BusService {
    public let bus: Bus
    public let daemon: Daemon
    /// the supervisor's `generation` when the published objects were last brought up to date
    private var generation = -1
    public var supervisor: Supervisor { daemon.supervisor }

    /// Who may call mutating methods: this euid and root.
    let ownerUID: uid_t = geteuid()

    private var exported: [BusSlot] = []
    /// what clients were last told, per slot (held, so an identifier is not reused meanwhile)
    private var snapshots: [ObjectIdentifier: (slot: ServiceSlot, snapshot: ServiceSnapshot)] = [:]
    /// the services whose objects clients know of
    private var published = Set<String>()
    private var configFiles: [String] = []
    /// callers of the …AndWait methods, answered when their job is done (BusServiceJobs.swift)
    var pendingJobs: [JobID: BusDeferredReply] = [:]
    private var lastEmitError: String?

    /// Exports the objects on `bus`, attaches it to the daemon's loop, and takes the name
    /// io.ringmaster.Ringmaster1 (last, so no client sees the name without objects).
    /// Throws if the name is taken (another ringmasterd of this user runs).
    public init(daemon: Daemon, bus: Bus) throws {
        self.bus = bus
        self.daemon = daemon
        // Every incoming message (calls, property reads, introspection) is activity.
        exported.append(try bus.onEveryMessage { [unowned self] in self.daemon.noteActivity() })
        exported.append(try bus.addObject(path: RingmasterBus.managerPath, interface: managerInterface()))
        exported.append(try bus.addFallback(prefix: RingmasterBus.servicePathPrefix, interface: serviceInterface()) {
            [unowned self] path in self.slot(at: path) != nil
        })
        exported.append(try bus.addNodeEnumerator(prefix: RingmasterBus.servicePathPrefix) { [unowned self] _ in
            self.supervisor.services.map { BusService.path(of: $0.name) }
        })
        exported.append(try bus.addObjectManager(path: RingmasterBus.managerPath))
        try bus.attach(to: daemon.loop)

        for slot in supervisor.allSlots { snapshots[ObjectIdentifier(slot)] = (slot, ServiceSnapshot(slot)) }
        published = Set(supervisor.services.map(\.name))
        configFiles = supervisor.config.files
        let previousChange = daemon.onChange
        daemon.onChange = { [weak self] in
            previousChange?()
            self?.supervisorChanged()
        }
        let previousState = daemon.onStateChange
        daemon.onStateChange = { [weak self] state in
            previousState?(state)
            self?.emitPropertiesChanged(RingmasterBus.managerPath, RingmasterBus.managerInterface, ["State"])
        }
        // Backpressure: no more batches of spawns or stops while dbus-daemon is behind on what
        // we sent, so a reply never waits behind thousands of queued signals.
        daemon.supervisor.isCongested = { [weak self] in (self?.bus.queuedWrites ?? 0) > 16 }
        daemon.supervisor.onProcessEvent = { [weak self] slot, instance, event in
            self?.processEvent(slot.name, instance, event)
        }
        let previousReloaded = daemon.onReloaded
        daemon.onReloaded = { [weak self] ok, message in
            previousReloaded?(ok, message)
            self?.reloaded(ok: ok, message: message)
        }
        wireJobs()
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
        case .noReloadSignal: return BusError(RingmasterBus.ErrorName.noReloadSignal, error.description)
        }
    }

    func start(_ name: String) throws(ControlError) {
        try supervisor.startService(name)
    }

    func stop(_ name: String) throws(ControlError) {
        try supervisor.stopService(name)
    }

    func restart(_ name: String) throws(ControlError) {
        try supervisor.restartService(name)
    }

    func scale(_ name: String, _ count: UInt32) throws(ControlError) {
        try supervisor.scaleService(name, to: Int(clamping: count))
    }

    func kill(_ name: String, _ signal: Int32) throws(ControlError) {
        try supervisor.killService(name, signal: signal)
    }

    func reloadService(_ name: String) throws(ControlError) {
        try supervisor.reloadService(name)
    }

    /// Reload (the D-Bus method): the daemon's reload, its refusal as an API error.
    func reload() throws {
        if daemon.state == .stopping { throw BusService.busError(.shuttingDown) }
        switch daemon.reload() {
        case .success: return
        case let .failure(errors): throw BusError(RingmasterBus.ErrorName.invalidConfig, errors.description)
        }
    }

    /// After every reload attempt (D-Bus or SIGHUP): the Reloaded signal.
    private func reloaded(ok: Bool, message: String) {
        emit("Reloaded", [.bool(ok), .string(message)])
    }

    // MARK: - change notification

    /// After every change of the supervisor: signals for processes and service states,
    /// PropertiesChanged for what differs from the last snapshot, objects added/removed.
    func supervisorChanged() {
        if supervisor.config.files != configFiles {
            configFiles = supervisor.config.files
            emitPropertiesChanged(RingmasterBus.managerPath, RingmasterBus.managerInterface, ["ConfigFiles"])
        }

        // Every slot, those a reload removed included while their processes stop: their
        // ProcessExited and ServiceStateChanged still go out (their objects are gone).
        // Only what changed is looked at: O(changed services) per event, not O(all).
        for slot in supervisor.takeChangedSlots() {
            let id = ObjectIdentifier(slot)
            let new = ServiceSnapshot(slot)
            let old = snapshots[id]?.snapshot
            snapshots[id] = (slot, new)
            guard let old else {
                // Added by a reload (its ProcessStarted signals came from the process hook).
                emit("ServiceStateChanged", [.string(slot.name), .string(new.state)])
                continue
            }
            if slot.retiring && slot.onRemoved == nil {
                // Removed by a reload: the supervisor drops the slot as its last process
                // exits, before the next change notice; report that exit on the way out.
                slot.onRemoved = { [weak self, unowned slot] in self?.slotRemoved(slot) }
            }
            guard new != old else { continue }
            announce(slot.name, from: old, to: new, hasObject: !slot.retiring)
        }
        guard supervisor.generation != generation else { return }
        generation = supervisor.generation
        // A service removed before we saw it retire: forget its snapshot.
        let live = Set(supervisor.allSlots.map(ObjectIdentifier.init))
        for id in snapshots.keys where !live.contains(id) { snapshots[id] = nil }

        // Objects come and go with the config.
        let names = Set(supervisor.services.map(\.name))
        for name in names.subtracting(published).sorted() {
            do { try bus.emitObjectAdded(path: BusService.path(of: name)) } catch { noteEmitError(error) }
        }
        for name in published.subtracting(names).sorted() {
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
        published = names
    }

    private func slotRemoved(_ slot: ServiceSlot) {
        let id = ObjectIdentifier(slot)
        guard let old = snapshots.removeValue(forKey: id)?.snapshot else { return }
        announce(slot.name, from: old, to: ServiceSnapshot(slot), hasObject: false)
    }

    /// The signals for what changed in one service since the last snapshot.
    /// ProcessStarted / ProcessExited, straight from the supervisor as they happen.
    private func processEvent(_ name: String, _ instance: Int, _ event: ProcessEvent) {
        switch event {
        case let .started(pid):
            emit("ProcessStarted", [.string(name), .uint32(UInt32(instance)), .uint32(UInt32(bitPattern: pid))])
        case let .exited(pid, status):
            emit("ProcessExited", [.string(name), .uint32(UInt32(instance)), .uint32(UInt32(bitPattern: pid)),
                                   .string(status.code.rawValue), .int32(status.status)])
        }
    }

    private func announce(_ name: String, from old: ServiceSnapshot, to new: ServiceSnapshot, hasObject: Bool) {
        if hasObject {
            let changed = new.properties.keys.filter { new.properties[$0] != old.properties[$0] }.sorted()
            emitPropertiesChanged(BusService.path(of: name), RingmasterBus.serviceInterface, changed)
        }
        if new.state != old.state {
            emit("ServiceStateChanged", [.string(name), .string(new.state)])
        }
    }

    func emit(_ signal: String, _ values: [BusValue]) {
        do {
            try bus.emitSignal(path: RingmasterBus.managerPath, interface: RingmasterBus.managerInterface,
                               member: signal, values)
        } catch { noteEmitError(error) }
    }

    func emitPropertiesChanged(_ path: String, _ interface: String, _ names: [String]) {
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

/// What clients were last told about a service: the values of its emits-change properties.
struct ServiceSnapshot: Equatable {
    var properties: [String: BusValue]

    var state: String { properties["State"]?.string ?? "" }

    init(_ slot: ServiceSlot) {
        properties = [:]
        for property in BusService.serviceProperties where property.change == .emitsChange {
            properties[property.name] = property.value(slot, nil)
        }
    }
}
