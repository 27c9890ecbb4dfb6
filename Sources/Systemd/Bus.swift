import CSystemd
// BusValue and BusError are part of this module's API (they live in DBus, which ringctl
// uses without libsystemd).
@_exported import DBus
import Glibc

/// A connection to a D-Bus bus (sd_bus), owned: deinit flushes and closes it.
///
/// The daemon's side: `attach(to:)` an `EventLoop`, `requestName`, export objects
/// (`addObject`, `addFallback` + `addNodeEnumerator`), `emitSignal`,
/// `emitPropertiesChanged`. Single-threaded, like the loop. The client side is
/// DBus.BusConnection (ringctl's, without libsystemd).
public final class Bus {
    let handle: OpaquePointer

    private init(_ handle: OpaquePointer) { self.handle = handle }

    deinit { sd_bus_flush_close_unref(handle) }

    /// The user's session bus ($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus).
    public static func user() throws -> Bus {
        var b: OpaquePointer?
        try check(sd_bus_open_user(&b), "connecting to the user bus")
        return Bus(b!)
    }

    /// The bus at a D-Bus address ("unix:path=/run/…"): for tests with a private bus.
    public static func open(address: String) throws -> Bus {
        var b: OpaquePointer?
        try check(sd_bus_new(&b), "sd_bus_new")
        let bus = Bus(b!)
        try check(sd_bus_set_address(b, address), "sd_bus_set_address(\(address))")
        try check(sd_bus_set_bus_client(b, 1), "sd_bus_set_bus_client")
        try check(sd_bus_start(b), "connecting to \(address)")
        return bus
    }

    /// Our unique name on the bus (":1.42").
    public var uniqueName: String? {
        var p: UnsafePointer<CChar>?
        guard sd_bus_get_unique_name(handle, &p) >= 0, let p else { return nil }
        return String(cString: p)
    }

    /// Messages sent but not yet written to the bus daemon.
    public var queuedWrites: UInt64 {
        var n: UInt64 = 0
        return sd_bus_get_n_queued_write(handle, &n) >= 0 ? n : 0
    }

    /// Lets `loop` dispatch the bus: incoming calls run as loop events, on its thread, before
    /// the other sources ready in the same iteration (priority −5): a call never waits behind
    /// thousands of pending exits (sd-bus handles one message per dispatch, so a flood of calls
    /// still leaves exits their turn once it is read).
    public func attach(to loop: EventLoop) throws {
        try check(sd_bus_attach_event(handle, loop.handle, -5), "sd_bus_attach_event")
    }

    public func detachFromLoop() {
        _ = sd_bus_detach_event(handle)
    }

    /// Takes a well-known name; fails with EEXIST if someone else has it.
    public func requestName(_ name: String) throws {
        let r = sd_bus_request_name(handle, name, 0)
        if r == -EEXIST {
            throw SystemdError("\(name) is already owned by another connection (is another instance running?)", errno: EEXIST)
        }
        try check(r, "requesting the bus name \(name)")
    }

    // MARK: exporting objects

    /// Exports `interface` at exactly `path`.
    public func addObject(path: String, interface: BusInterface) throws -> BusSlot {
        let vtable = BusVtable(interface)
        var slot: OpaquePointer?
        try check(sd_bus_add_object_vtable(handle, &slot, path, interface.name, vtable.entries, vtable.userdata),
                  "exporting \(interface.name) at \(path)")
        return BusSlot(slot!, owning: vtable)
    }

    /// Exports `interface` at every path below `prefix` for which `exists(path)` is true:
    /// one registration for any number of objects (e.g. one per service).
    public func addFallback(prefix: String, interface: BusInterface,
                            exists: @escaping (_ path: String) -> Bool) throws -> BusSlot {
        let vtable = BusVtable(interface)
        vtable.exists = exists
        var slot: OpaquePointer?
        try check(sd_bus_add_fallback_vtable(handle, &slot, prefix, interface.name, vtable.entries,
                                             fallbackFindTrampoline, vtable.userdata),
                  "exporting \(interface.name) below \(prefix)")
        return BusSlot(slot!, owning: vtable)
    }

    /// Lists the objects below `prefix` (full paths), for introspection and `busctl tree`.
    public func addNodeEnumerator(prefix: String, nodes: @escaping (_ prefix: String) -> [String]) throws -> BusSlot {
        let box = BusCallbackBox(nodes)
        var slot: OpaquePointer?
        try check(sd_bus_add_node_enumerator(handle, &slot, prefix, nodeEnumeratorTrampoline, box.userdata),
                  "sd_bus_add_node_enumerator(\(prefix))")
        return BusSlot(slot!, owning: box)
    }

    /// org.freedesktop.DBus.ObjectManager at `path` (GetManagedObjects, InterfacesAdded/Removed).
    public func addObjectManager(path: String) throws -> BusSlot {
        var slot: OpaquePointer?
        try check(sd_bus_add_object_manager(handle, &slot, path), "sd_bus_add_object_manager(\(path))")
        return BusSlot(slot!, owning: nil)
    }

    // MARK: emitting

    public func emitSignal(path: String, interface: String, member: String, _ values: [BusValue]) throws {
        var m: OpaquePointer?
        try check(sd_bus_message_new_signal(handle, &m, path, interface, member), "sd_bus_message_new_signal(\(member))")
        let message = BusMessage(adopting: m!)
        try message.append(values)
        try check(sd_bus_send(handle, message.handle, nil), "sending signal \(member)")
    }

    /// PropertiesChanged for `names` (which must be `.emitsChange` properties); sd-bus
    /// reads the new values through the getters.
    public func emitPropertiesChanged(path: String, interface: String, _ names: [String]) throws {
        guard !names.isEmpty else { return }
        _ = try withCStringArray(names) { strv in
            _ = try check(sd_bus_emit_properties_changed_strv(handle, path, interface, strv),
                      "emitting PropertiesChanged on \(path)")
        }
    }

    /// InterfacesAdded for an object below an object manager. (No InterfacesRemoved
    /// counterpart: by then the object is gone and sd-bus cannot list its interfaces, so
    /// BusService sends that signal itself.)
    public func emitObjectAdded(path: String) throws {
        try check(sd_bus_emit_object_added(handle, path), "sd_bus_emit_object_added(\(path))")
    }

    // MARK: incoming

    /// Calls `handler` for every incoming message (calls, property reads, introspection,
    /// signals), before sd-bus dispatches it (sd_bus_add_filter); it cannot stop the dispatch.
    public func onEveryMessage(_ handler: @escaping () -> Void) throws -> BusSlot {
        let box = BusCallbackBox(handler)
        var slot: OpaquePointer?
        try check(sd_bus_add_filter(handle, &slot, filterTrampoline, box.userdata), "sd_bus_add_filter")
        return BusSlot(slot!, owning: box)
    }

    // MARK: paths

    /// `prefix` + "/" + `name` escaped for a path (sd_bus_path_encode: "web-1" → "web_2d1").
    public static func encodePath(prefix: String, _ name: String) -> String {
        var out: UnsafeMutablePointer<CChar>?
        guard sd_bus_path_encode(prefix, name, &out) >= 0, let out else { return prefix + "/_" }
        defer { free(out) }
        return String(cString: out)
    }

    /// The name `encodePath` encoded, or nil if `path` is not directly below `prefix`.
    public static func decodePath(prefix: String, _ path: String) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        guard sd_bus_path_decode(path, prefix, &out) > 0, let out else { return nil }
        defer { free(out) }
        return String(cString: out)
    }
}

/// A NULL-terminated char** for the duration of `body`.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) throws -> R) rethrows -> R {
    let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
    for (i, s) in strings.enumerated() { array[i] = strdup(s) }
    array[strings.count] = nil
    defer {
        for i in 0..<strings.count { free(array[i]) }
        array.deallocate()
    }
    return try body(array)
}

private let nodeEnumeratorTrampoline: sd_bus_node_enumerator_t = { _, prefix, userdata, retNodes, _ in
    let box = BusCallbackBox<(String) -> [String]>.from(userdata)
    let nodes = box.handler(prefix.map { String(cString: $0) } ?? "")
    // sd-bus frees the array and each string: both must come from malloc.
    guard let array = malloc((nodes.count + 1) * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride)?
        .assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self) else { return -ENOMEM }
    for (i, node) in nodes.enumerated() { array[i] = strdup(node) }
    array[nodes.count] = nil
    retNodes?.pointee = array
    return 0
}

private let filterTrampoline: sd_bus_message_handler_t = { _, userdata, _ in
    let box = BusCallbackBox<() -> Void>.from(userdata)
    withExtendedLifetime(box) { box.handler() }
    return 0 // go on: the message is dispatched as usual
}
