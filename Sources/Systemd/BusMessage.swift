import CSystemd
import Glibc

/// An sd_bus_message, owned (one reference held, released in deinit). Reading walks the
/// message's own cursor, as sd_bus_message_read_basic does; writing appends. Swift cannot
/// call sd-bus's variadic read/append, so everything goes through the basic/container calls.
public final class BusMessage {
    let handle: OpaquePointer

    /// Takes a new reference to `handle`.
    init(retaining handle: OpaquePointer) {
        self.handle = sd_bus_message_ref(handle)
    }

    /// Adopts the reference the caller owns (e.g. a message just created).
    init(adopting handle: OpaquePointer) {
        self.handle = handle
    }

    deinit { sd_bus_message_unref(handle) }

    // MARK: header

    public var member: String? { sd_bus_message_get_member(handle).map { String(cString: $0) } }
    public var path: String? { sd_bus_message_get_path(handle).map { String(cString: $0) } }
    /// The signature of the whole body.
    public var signature: String { sd_bus_message_get_signature(handle, 1).map { String(cString: $0) } ?? "" }

    /// The effective uid of the process that sent this message, from the bus driver
    /// (GetConnectionCredentials' UnixUserID, which dbus-daemon and dbus-broker take from
    /// SO_PEERCRED of the sender's connection: its effective uid at connect time) — not
    /// from /proc, so the sender cannot race us by exec'ing something else.
    public func senderEUID() throws -> uid_t {
        var creds: OpaquePointer?
        let mask = UInt64(SD_BUS_CREDS_EUID) | UInt64(SD_BUS_CREDS_UID)
        try check(sd_bus_query_sender_creds(handle, mask, &creds), "sd_bus_query_sender_creds")
        defer { sd_bus_creds_unref(creds) }
        var uid: uid_t = 0
        if sd_bus_creds_get_euid(creds, &uid) >= 0 { return uid }
        try check(sd_bus_creds_get_uid(creds, &uid), "sd_bus_creds_get_uid")
        return uid
    }

    // MARK: reading

    /// Reads the next value, whatever its type; throws at the end of the body.
    public func readValue() throws -> BusValue {
        guard let v = try readValueIfAny() else {
            throw BusError(BusError.invalidArgs, "missing argument (message signature \"\(signature)\")")
        }
        return v
    }

    public func readString() throws -> String {
        try read(.string) { $0.string }
    }

    public func readUInt32() throws -> UInt32 {
        try read(.uint32) { if case let .uint32(v) = $0 { return v } else { return nil } }
    }

    public func readInt32() throws -> Int32 {
        try read(.int32) { if case let .int32(v) = $0 { return v } else { return nil } }
    }

    private enum Expected: String { case string = "s", uint32 = "u", int32 = "i" }

    private func read<T>(_ expected: Expected, _ extract: (BusValue) -> T?) throws -> T {
        var type: CChar = 0
        _ = sd_bus_message_peek_type(handle, &type, nil)
        guard type == CChar(UInt8(ascii: expected.rawValue.unicodeScalars.first!)) else {
            throw BusError(BusError.invalidArgs, "expected an argument of type \"\(expected.rawValue)\" (message signature \"\(signature)\")")
        }
        guard let v = extract(try readValue()) else {
            throw BusError(BusError.invalidArgs, "expected an argument of type \"\(expected.rawValue)\"")
        }
        return v
    }

    /// nil at the end of the body or of the container being read.
    private func readValueIfAny() throws -> BusValue? {
        var type: CChar = 0
        var contents: UnsafePointer<CChar>?
        let r = sd_bus_message_peek_type(handle, &type, &contents)
        try check(r, "sd_bus_message_peek_type")
        if r == 0 { return nil }
        let t = UInt8(bitPattern: type)
        switch t {
        case UInt8(ascii: "a"), UInt8(ascii: "r"), UInt8(ascii: "e"), UInt8(ascii: "v"):
            let inner = contents.map { String(cString: $0) } ?? ""
            try check(sd_bus_message_enter_container(handle, type, inner), "sd_bus_message_enter_container")
            var items: [BusValue] = []
            while let v = try readValueIfAny() { items.append(v) }
            try check(sd_bus_message_exit_container(handle), "sd_bus_message_exit_container")
            switch t {
            case UInt8(ascii: "a"): return .array(element: inner, items)
            case UInt8(ascii: "r"): return .structure(items)
            case UInt8(ascii: "e"):
                guard items.count == 2 else { throw BusError(BusError.invalidArgs, "malformed dict entry") }
                return .dictEntry(items[0], items[1])
            default:
                guard items.count == 1 else { throw BusError(BusError.invalidArgs, "malformed variant") }
                return .variant(items[0])
            }
        default:
            return try readBasic(t)
        }
    }

    private func readBasic(_ t: UInt8) throws -> BusValue {
        let type = CChar(bitPattern: t)
        func basic<T: BitwiseCopyable>(_ initial: T) throws -> T {
            var v = initial
            try check(sd_bus_message_read_basic(handle, type, &v), "sd_bus_message_read_basic")
            return v
        }
        switch t {
        case UInt8(ascii: "y"): return .byte(try basic(UInt8(0)))
        case UInt8(ascii: "b"): return .bool(try basic(Int32(0)) != 0)
        case UInt8(ascii: "n"): return .int16(try basic(Int16(0)))
        case UInt8(ascii: "q"): return .uint16(try basic(UInt16(0)))
        case UInt8(ascii: "i"): return .int32(try basic(Int32(0)))
        case UInt8(ascii: "u"): return .uint32(try basic(UInt32(0)))
        case UInt8(ascii: "x"): return .int64(try basic(Int64(0)))
        case UInt8(ascii: "t"): return .uint64(try basic(UInt64(0)))
        case UInt8(ascii: "d"): return .double(try basic(Double(0)))
        case UInt8(ascii: "h"): return .int32(try basic(Int32(-1))) // fd number, not kept
        case UInt8(ascii: "s"), UInt8(ascii: "o"), UInt8(ascii: "g"):
            var p: UnsafePointer<CChar>?
            try check(sd_bus_message_read_basic(handle, type, &p), "sd_bus_message_read_basic")
            let s = p.map { String(cString: $0) } ?? ""
            return t == UInt8(ascii: "s") ? .string(s) : t == UInt8(ascii: "o") ? .objectPath(s) : .signature(s)
        default:
            throw BusError(BusError.invalidArgs, "unsupported D-Bus type \"\(Character(Unicode.Scalar(t)))\"")
        }
    }

    // MARK: writing

    public func append(_ values: [BusValue]) throws {
        for v in values { try append(v) }
    }

    public func append(_ value: BusValue) throws {
        func basic<T: BitwiseCopyable>(_ type: String, _ v: T) throws {
            var v = v
            try check(sd_bus_message_append_basic(handle, typeChar(type), &v), "sd_bus_message_append_basic(\(type))")
        }
        switch value {
        case let .byte(v): try basic("y", v)
        case let .bool(v): try basic("b", Int32(v ? 1 : 0))
        case let .int16(v): try basic("n", v)
        case let .uint16(v): try basic("q", v)
        case let .int32(v): try basic("i", v)
        case let .uint32(v): try basic("u", v)
        case let .int64(v): try basic("x", v)
        case let .uint64(v): try basic("t", v)
        case let .double(v): try basic("d", v)
        case let .string(s), let .objectPath(s), let .signature(s):
            // For the string types append_basic takes the string itself.
            let r = sd_bus_message_append_basic(handle, typeChar(value.signature), s)
            try check(r, "sd_bus_message_append_basic(\(value.signature))")
        case let .array(element, items):
            try container("a", element) { for i in items { try append(i) } }
        case let .dictEntry(k, v):
            try container("e", k.signature + v.signature) { try append(k); try append(v) }
        case let .structure(fields):
            try container("r", fields.map(\.signature).joined()) { for f in fields { try append(f) } }
        case let .variant(inner):
            try container("v", inner.signature) { try append(inner) }
        }
    }

    private func container(_ type: String, _ contents: String, _ body: () throws -> Void) throws {
        try check(sd_bus_message_open_container(handle, typeChar(type), contents),
                  "sd_bus_message_open_container(\(type)\(contents))")
        try body()
        try check(sd_bus_message_close_container(handle), "sd_bus_message_close_container")
    }
}

private func typeChar(_ s: String) -> CChar {
    CChar(bitPattern: s.utf8.first!)
}
