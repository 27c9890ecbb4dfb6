import CSystemd
import Glibc

/// The C `sd_bus_vtable` array for one `BusInterface`, every string it points to, and the
/// Swift handlers its entries dispatch to. sd-bus reads this memory for as long as the
/// object is registered, so a `BusSlot` owns its vtable and frees it only after
/// unregistering (sd_bus_slot_unref) — never before.
///
/// Every entry points at the same three C trampolines; the object's userdata is this
/// instance, and the member name (from the message, or the property argument) selects
/// the Swift closure.
final class BusVtable {
    let interface: String
    private(set) var entries: UnsafeMutablePointer<sd_bus_vtable>
    private let count: Int
    private var allocations: [UnsafeMutableRawPointer] = []
    private let methods: [String: BusMethod]
    private let properties: [String: BusProperty]
    /// For fallback objects: whether an object exists at a path under the prefix.
    var exists: ((String) -> Bool)?

    init(_ description: BusInterface) {
        interface = description.name
        methods = Dictionary(description.methods.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        properties = Dictionary(description.properties.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        count = 2 + description.methods.count + description.properties.count + description.signals.count
        entries = .allocate(capacity: count)
        entries.initialize(repeating: sd_bus_vtable(), count: count)

        var i = 0
        var start = sd_bus_vtable()
        start.type = UInt8(ascii: "<") // _SD_BUS_VTABLE_START
        start.flags = 0
        start.x.start.element_size = MemoryLayout<sd_bus_vtable>.size
        start.x.start.features = UInt64(_SD_BUS_VTABLE_PARAM_NAMES)
        start.x.start.vtable_format_reference = csd_bus_object_vtable_format()
            .assumingMemoryBound(to: UInt32.self)
        entries[i] = start
        i += 1

        for m in description.methods {
            var e = sd_bus_vtable()
            e.type = UInt8(ascii: "M")
            // The user bus is trusted by sd-bus (no per-method capability checks); access
            // control is ours, in the handlers. UNPRIVILEGED says so for a system bus too.
            e.flags = UInt64(SD_BUS_VTABLE_UNPRIVILEGED)
            e.x.method.member = cString(m.name)
            e.x.method.signature = cString(m.inputs.map(\.signature).joined())
            e.x.method.result = cString(m.outputs.map(\.signature).joined())
            e.x.method.handler = methodTrampoline
            e.x.method.offset = 0
            e.x.method.names = names(m.inputs + m.outputs)
            entries[i] = e
            i += 1
        }
        for p in description.properties {
            var e = sd_bus_vtable()
            e.type = UInt8(ascii: "P")
            switch p.change {
            case .constant: e.flags = UInt64(SD_BUS_VTABLE_PROPERTY_CONST)
            case .emitsChange: e.flags = UInt64(SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)
            case .unannounced: e.flags = 0
            case .explicit: e.flags = UInt64(SD_BUS_VTABLE_PROPERTY_EXPLICIT)
            }
            e.x.property.member = cString(p.name)
            e.x.property.signature = cString(p.signature)
            e.x.property.get = propertyTrampoline
            e.x.property.set = nil
            e.x.property.offset = 0
            entries[i] = e
            i += 1
        }
        for s in description.signals {
            var e = sd_bus_vtable()
            e.type = UInt8(ascii: "S")
            e.flags = 0
            e.x.signal.member = cString(s.name)
            e.x.signal.signature = cString(s.arguments.map(\.signature).joined())
            e.x.signal.names = names(s.arguments)
            entries[i] = e
            i += 1
        }
        var end = sd_bus_vtable()
        end.type = UInt8(ascii: ">") // _SD_BUS_VTABLE_END
        entries[i] = end
    }

    deinit {
        entries.deinitialize(count: count)
        entries.deallocate()
        for p in allocations { free(p) }
    }

    var userdata: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ userdata: UnsafeMutableRawPointer?) -> BusVtable {
        Unmanaged<BusVtable>.fromOpaque(userdata!).takeUnretainedValue()
    }

    /// A C string that lives as long as the vtable.
    private func cString(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    /// sd-bus's argument-name list: each name NUL-terminated, then one more NUL.
    private func names(_ args: [BusArgument]) -> UnsafePointer<CChar> {
        var bytes: [UInt8] = []
        for a in args { bytes += a.name.utf8; bytes.append(0) }
        bytes.append(0)
        let p = malloc(bytes.count)!
        allocations.append(p)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
    }

    // MARK: dispatch (called from the trampolines, on the loop's thread)

    /// Runs the method's handler and sends its reply; a thrown error becomes the error
    /// reply. Never lets a Swift error (or a bad reply) escape to sd-bus unanswered.
    fileprivate func callMethod(_ m: OpaquePointer, _ ret: UnsafeMutablePointer<sd_bus_error>?) -> Int32 {
        let call = BusMessage(retaining: m)
        guard let member = call.member, let method = methods[member] else {
            return BusError(BusError.unknownMethod, "Unknown method \(call.member ?? "?") of \(interface)").set(ret)
        }
        do {
            let values = try method.handler(BusCall(message: call, path: call.path ?? ""))
            let expected = method.outputs.map(\.signature).joined()
            let actual = values.map(\.signature).joined()
            guard actual == expected else {
                throw BusError(BusError.failed, "internal error: \(member) produced \"\(actual)\", declared \"\(expected)\"")
            }
            var reply: OpaquePointer?
            try check(sd_bus_message_new_method_return(m, &reply), "sd_bus_message_new_method_return")
            let message = BusMessage(adopting: reply!)
            try message.append(values)
            try check(sd_bus_send(nil, message.handle, nil), "sd_bus_send")
            return 1
        } catch is BusDeferredReply.Later {
            return 1 // answered later (BusDeferredReply)
        } catch let error as BusError {
            return error.set(ret)
        } catch {
            return BusError(BusError.failed, "\(member): \(error)").set(ret)
        }
    }

    fileprivate func getProperty(_ name: String, path: String, reply: OpaquePointer,
                                 _ ret: UnsafeMutablePointer<sd_bus_error>?) -> Int32 {
        guard let property = properties[name] else {
            return BusError(BusError.invalidArgs, "Unknown property \(name) of \(interface)").set(ret)
        }
        do {
            let value = try property.getter(path)
            guard value.signature == property.signature else {
                throw BusError(BusError.failed, "internal error: property \(name) produced \"\(value.signature)\", declared \"\(property.signature)\"")
            }
            try BusMessage(retaining: reply).append(value)
            return 1
        } catch let error as BusError {
            return error.set(ret)
        } catch {
            return BusError(BusError.failed, "\(name): \(error)").set(ret)
        }
    }
}

private let methodTrampoline: sd_bus_message_handler_t = { m, userdata, ret in
    guard let m else { return -EINVAL }
    let vtable = BusVtable.from(userdata)
    return withExtendedLifetime(vtable) { vtable.callMethod(m, ret) }
}

private let propertyTrampoline: sd_bus_property_get_t = { _, path, _, property, reply, userdata, ret in
    guard let property, let reply else { return -EINVAL }
    let vtable = BusVtable.from(userdata)
    return withExtendedLifetime(vtable) {
        vtable.getProperty(String(cString: property), path: path.map { String(cString: $0) } ?? "", reply: reply, ret)
    }
}

/// For fallback vtables: the object at `path` exists iff `exists(path)`; the handlers then
/// get the vtable itself as userdata, as for a plain object.
let fallbackFindTrampoline: sd_bus_object_find_t = { _, path, _, userdata, found, _ in
    let vtable = BusVtable.from(userdata)
    guard let path, let exists = vtable.exists, exists(String(cString: path)) else { return 0 }
    found?.pointee = userdata
    return 1
}
