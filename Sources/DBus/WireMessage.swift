/// One D-Bus message as it travels on the wire: the fixed header, the header fields, and
/// the body's values.
public struct WireMessage: Equatable {
    public enum Kind: UInt8, Equatable {
        case methodCall = 1, methodReturn = 2, error = 3, signal = 4
    }

    public var kind: Kind
    public var flags: UInt8 = 0
    public var serial: UInt32 = 0
    public var path: String?
    public var interface: String?
    public var member: String?
    public var errorName: String?
    public var replySerial: UInt32?
    public var destination: String?
    public var sender: String?
    public var body: [BusValue] = []

    public init(kind: Kind) { self.kind = kind }

    public static func methodCall(destination: String?, path: String, interface: String?, member: String,
                                  _ body: [BusValue] = []) -> WireMessage {
        var m = WireMessage(kind: .methodCall)
        m.destination = destination
        m.path = path
        m.interface = interface
        m.member = member
        m.body = body
        return m
    }

    /// The body's signature.
    public var signature: String { body.map(\.signature).joined() }

    /// An error reply as a BusError: its name, and its first string argument as the message.
    public var busError: BusError? {
        guard kind == .error else { return nil }
        return BusError(errorName ?? BusError.failed, body.first?.string ?? "")
    }

    /// The largest message the specification allows (128 MiB).
    static let maxLength = 1 << 27

    // Header field codes.
    private enum Field: UInt8 {
        case path = 1, interface, member, errorName, replySerial, destination, sender, signature, unixFDs
    }

    /// The message, marshalled little endian with this `serial`.
    public func encoded(serial: UInt32) throws -> [UInt8] {
        var body = WireEncoder(base: 0) // the body starts 8-aligned
        for v in self.body { try body.value(v) }
        var fields: [BusValue] = []
        func field(_ code: Field, _ value: BusValue?) {
            if let value { fields.append(.structure([.byte(code.rawValue), .variant(value)])) }
        }
        field(.path, path.map(BusValue.objectPath))
        field(.interface, interface.map(BusValue.string))
        field(.member, member.map(BusValue.string))
        field(.errorName, errorName.map(BusValue.string))
        field(.replySerial, replySerial.map(BusValue.uint32))
        field(.destination, destination.map(BusValue.string))
        field(.sender, sender.map(BusValue.string))
        if !self.body.isEmpty { field(.signature, .signature(signature)) }

        var out = WireEncoder(base: 0)
        out.integer(UInt8(ascii: "l"))
        out.integer(kind.rawValue)
        out.integer(flags)
        out.integer(UInt8(1)) // protocol version
        out.integer(UInt32(body.bytes.count))
        out.integer(serial)
        try out.value(.array(element: "(yv)", fields))
        out.align(8)
        let bytes = out.bytes + body.bytes
        guard bytes.count <= Self.maxLength else { throw WireFormatError("message longer than 128 MiB") }
        return bytes
    }

    /// How long the message at the start of `bytes` is, once its 16-byte fixed header is
    /// there; nil while fewer bytes than that have arrived.
    static func length(ofMessageAt bytes: ArraySlice<UInt8>) throws -> Int? {
        guard bytes.count >= 16 else { return nil }
        let order = bytes[bytes.startIndex]
        guard order == UInt8(ascii: "l") || order == UInt8(ascii: "B") else {
            throw WireFormatError("unknown byte order '\(order)'")
        }
        var d = WireDecoder(bytes, at: 4, bigEndian: order == UInt8(ascii: "B"))
        let bodyLength = Int(try d.integer(UInt32.self))
        _ = try d.integer(UInt32.self) // serial
        let fieldsEnd = 16 + Int(try d.integer(UInt32.self))
        let total = (fieldsEnd + 7) / 8 * 8 + bodyLength
        guard total <= maxLength else { throw WireFormatError("message longer than 128 MiB") }
        return total
    }

    /// Parses one whole message (exactly `length(ofMessageAt:)` bytes).
    public init(decoding bytes: [UInt8]) throws {
        try self.init(decoding: bytes[...])
    }

    /// Parses one whole message where it lies (a slice of a receive buffer).
    init(decoding bytes: ArraySlice<UInt8>) throws {
        guard bytes.count >= 16 else { throw WireFormatError("shorter than a header") }
        var d = WireDecoder(bytes, at: 1, bigEndian: bytes.first == UInt8(ascii: "B"))
        guard let kind = Kind(rawValue: try d.integer(UInt8.self)) else {
            throw WireFormatError("unknown message type \(bytes[bytes.startIndex + 1])")
        }
        self.kind = kind
        flags = try d.integer(UInt8.self)
        _ = try d.integer(UInt8.self) // protocol version
        let bodyLength = Int(try d.integer(UInt32.self))
        serial = try d.integer(UInt32.self)
        let fieldSignature = Array("a(yv)".utf8)
        var signature = ""
        for entry in try d.value(fieldSignature, 0..<fieldSignature.count).elements ?? [] {
            guard case let .structure(pair) = entry, pair.count == 2, case let .byte(code) = pair[0],
                  case let .variant(value) = pair[1] else { continue }
            switch Field(rawValue: code) {
            case .path: path = value.string
            case .interface: interface = value.string
            case .member: member = value.string
            case .errorName: errorName = value.string
            case .replySerial: replySerial = value.integer.flatMap { UInt32(exactly: $0) }
            case .destination: destination = value.string
            case .sender: sender = value.string
            case .signature: signature = value.string ?? ""
            case .unixFDs, nil: break // unknown fields are ignored, as the specification says
            }
        }
        try d.align(8)
        guard d.offset + bodyLength == bytes.count else {
            throw WireFormatError("body length \(bodyLength) does not match the message's")
        }
        body = try d.values(signature: signature)
        guard d.position == bytes.endIndex else { throw WireFormatError("body longer than its signature") }
    }
}
