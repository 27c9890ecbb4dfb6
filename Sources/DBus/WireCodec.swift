// The D-Bus wire format ("Message Protocol" in the D-Bus specification): values marshalled
// little endian (read in either byte order), each aligned to its type's natural boundary
// counted from the start of the message. Only what a client needs: no unix fds (`h`).

/// A message or value that breaks the wire format.
public struct WireFormatError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "malformed D-Bus data: " + message }
}

enum Signature {
    /// Deepest nesting of arrays, structs and variants accepted (the specification allows
    /// 32 arrays and 32 structs; variants are bounded here too, so a message cannot recurse
    /// without end).
    static let maxDepth = 64

    /// The alignment of values of the complete type starting with `code`.
    static func alignment(_ code: UInt8) -> Int {
        switch code {
        case UInt8(ascii: "n"), UInt8(ascii: "q"): return 2
        case UInt8(ascii: "b"), UInt8(ascii: "i"), UInt8(ascii: "u"), UInt8(ascii: "s"), UInt8(ascii: "o"),
             UInt8(ascii: "a"), UInt8(ascii: "h"): return 4
        case UInt8(ascii: "x"), UInt8(ascii: "t"), UInt8(ascii: "d"), UInt8(ascii: "("), UInt8(ascii: "{"): return 8
        default: return 1 // y, g, v
        }
    }

    /// The end of the single complete type that starts at `start` in `sig`.
    static func completeTypeEnd(_ sig: [UInt8], from start: Int, depth: Int = 0) throws -> Int {
        guard depth < maxDepth else { throw WireFormatError("signature nested too deeply") }
        guard start < sig.count else { throw WireFormatError("signature ends inside a type") }
        switch sig[start] {
        case UInt8(ascii: "a"):
            return try completeTypeEnd(sig, from: start + 1, depth: depth + 1)
        case UInt8(ascii: "("), UInt8(ascii: "{"):
            let close = sig[start] == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "}")
            var i = start + 1
            var fields = 0
            while i < sig.count, sig[i] != close {
                i = try completeTypeEnd(sig, from: i, depth: depth + 1)
                fields += 1
            }
            guard i < sig.count, fields > 0, close == UInt8(ascii: ")") || fields == 2 else {
                throw WireFormatError("bad struct or dict entry in signature \"\(String(decoding: sig, as: UTF8.self))\"")
            }
            return i + 1
        case UInt8(ascii: "y"), UInt8(ascii: "b"), UInt8(ascii: "n"), UInt8(ascii: "q"), UInt8(ascii: "i"),
             UInt8(ascii: "u"), UInt8(ascii: "x"), UInt8(ascii: "t"), UInt8(ascii: "d"), UInt8(ascii: "s"),
             UInt8(ascii: "o"), UInt8(ascii: "g"), UInt8(ascii: "v"):
            return start + 1
        default:
            throw WireFormatError("unsupported type code '\(Character(Unicode.Scalar(sig[start])))' in signature")
        }
    }

    /// The complete types of a message body's signature, one per argument.
    static func split(_ signature: String) throws -> [[UInt8]] {
        let sig = Array(signature.utf8)
        var out: [[UInt8]] = []
        var i = 0
        while i < sig.count {
            let end = try completeTypeEnd(sig, from: i)
            out.append(Array(sig[i..<end]))
            i = end
        }
        return out
    }
}

/// Appends values to a message buffer, little endian.
struct WireEncoder {
    private(set) var bytes: [UInt8] = []
    /// Where `bytes` starts in the message: alignment counts from the message's start.
    let base: Int

    init(base: Int = 0) { self.base = base }

    mutating func align(_ n: Int) {
        while (base + bytes.count) % n != 0 { bytes.append(0) }
    }

    mutating func integer<T: FixedWidthInteger>(_ v: T) {
        align(MemoryLayout<T>.size)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ s: String) throws {
        guard !s.utf8.contains(0) else { throw WireFormatError("a string holds a NUL byte") }
        integer(UInt32(s.utf8.count))
        bytes += s.utf8
        bytes.append(0)
    }

    mutating func signature(_ s: String) throws {
        let utf8 = Array(s.utf8)
        guard utf8.count <= 255 else { throw WireFormatError("signature longer than 255 bytes") }
        bytes.append(UInt8(utf8.count))
        bytes += utf8
        bytes.append(0)
    }

    mutating func value(_ v: BusValue, depth: Int = 0) throws {
        guard depth < Signature.maxDepth else { throw WireFormatError("value nested too deeply") }
        switch v {
        case let .byte(x): bytes.append(x)
        case let .bool(x): integer(UInt32(x ? 1 : 0))
        case let .int16(x): integer(x)
        case let .uint16(x): integer(x)
        case let .int32(x): integer(x)
        case let .uint32(x): integer(x)
        case let .int64(x): integer(x)
        case let .uint64(x): integer(x)
        case let .double(x): integer(x.bitPattern)
        case let .string(s), let .objectPath(s): try string(s)
        case let .signature(s): try signature(s)
        case let .array(element, items):
            integer(UInt32(0))
            let lengthAt = bytes.count - 4
            align(Signature.alignment(element.utf8.first ?? 0))
            let start = bytes.count
            for item in items {
                guard item.signature == element else {
                    throw WireFormatError("array of \(element) holds a \(item.signature)")
                }
                try value(item, depth: depth + 1)
            }
            let length = UInt32(bytes.count - start).littleEndian
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: length, toByteOffset: lengthAt, as: UInt32.self) }
        case let .dictEntry(k, x):
            align(8)
            try value(k, depth: depth + 1)
            try value(x, depth: depth + 1)
        case let .structure(fields):
            align(8)
            for field in fields { try value(field, depth: depth + 1) }
        case let .variant(inner):
            try signature(inner.signature)
            try value(inner, depth: depth + 1)
        }
    }
}

/// Reads values out of one received message where it lies: `bytes` is the message (a slice of
/// the connection's buffer, not a copy), `position` an index into it, and alignment counts
/// from the message's first byte.
struct WireDecoder {
    /// At most this many values in one message (each element of an array, each field, each
    /// variant counts): a 64 MiB `ay` would otherwise become 64 Mi values of 40+ bytes each.
    /// ringctl's largest replies (ListServices of 10,000 services) hold ~100,000.
    static let maxValues = 1 << 19

    let bytes: ArraySlice<UInt8>
    var position: Int
    /// values still allowed in this message
    private var budget = WireDecoder.maxValues
    /// 'l' (little endian) or 'B' (big endian), from the message's first byte.
    let bigEndian: Bool

    init(_ bytes: ArraySlice<UInt8>, at offset: Int = 0, bigEndian: Bool = false) {
        self.bytes = bytes
        position = bytes.startIndex + offset
        self.bigEndian = bigEndian
    }

    init(_ bytes: [UInt8], at offset: Int = 0, bigEndian: Bool = false) {
        self.init(bytes[...], at: offset, bigEndian: bigEndian)
    }

    /// How far into the message `position` is.
    var offset: Int { position - bytes.startIndex }

    mutating func align(_ n: Int) throws {
        let padded = bytes.startIndex + (offset + n - 1) / n * n
        guard padded <= bytes.endIndex else { throw WireFormatError("truncated (padding)") }
        position = padded
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        try align(size)
        guard position + size <= bytes.endIndex else { throw WireFormatError("truncated (\(T.self))") }
        let v = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        position += size
        return bigEndian ? T(bigEndian: v) : T(littleEndian: v)
    }

    mutating func string() throws -> String {
        let n = Int(try integer(UInt32.self))
        guard position + n < bytes.endIndex, bytes[position + n] == 0 else {
            throw WireFormatError("truncated or unterminated string")
        }
        defer { position += n + 1 }
        return String(decoding: bytes[position..<position + n], as: UTF8.self)
    }

    mutating func signature() throws -> String {
        guard position < bytes.endIndex else { throw WireFormatError("truncated signature") }
        let n = Int(bytes[position])
        guard position + 1 + n < bytes.endIndex, bytes[position + 1 + n] == 0 else {
            throw WireFormatError("truncated or unterminated signature")
        }
        defer { position += n + 2 }
        return String(decoding: bytes[position + 1..<position + 1 + n], as: UTF8.self)
    }

    /// One value of the single complete type `sig[range]`.
    mutating func value(_ sig: [UInt8], _ range: Range<Int>, depth: Int = 0) throws -> BusValue {
        guard depth < Signature.maxDepth else { throw WireFormatError("value nested too deeply") }
        budget -= 1
        guard budget >= 0 else { throw Self.tooManyValues }
        guard let code = range.first.map({ sig[$0] }) else { throw WireFormatError("empty type") }
        switch code {
        case UInt8(ascii: "y"):
            guard position < bytes.endIndex else { throw WireFormatError("truncated (byte)") }
            position += 1
            return .byte(bytes[position - 1])
        case UInt8(ascii: "b"):
            let x = try integer(UInt32.self)
            guard x <= 1 else { throw WireFormatError("boolean \(x)") }
            return .bool(x == 1)
        case UInt8(ascii: "n"): return .int16(try integer(Int16.self))
        case UInt8(ascii: "q"): return .uint16(try integer(UInt16.self))
        case UInt8(ascii: "i"): return .int32(try integer(Int32.self))
        case UInt8(ascii: "u"): return .uint32(try integer(UInt32.self))
        case UInt8(ascii: "x"): return .int64(try integer(Int64.self))
        case UInt8(ascii: "t"): return .uint64(try integer(UInt64.self))
        case UInt8(ascii: "d"): return .double(Double(bitPattern: try integer(UInt64.self)))
        case UInt8(ascii: "s"): return .string(try string())
        case UInt8(ascii: "o"): return .objectPath(try string())
        case UInt8(ascii: "g"): return .signature(try signature())
        case UInt8(ascii: "v"):
            let inner = Array(try signature().utf8)
            guard !inner.isEmpty, try Signature.completeTypeEnd(inner, from: 0) == inner.count else {
                throw WireFormatError("variant signature is not one complete type")
            }
            return .variant(try value(inner, 0..<inner.count, depth: depth + 1))
        case UInt8(ascii: "a"):
            let length = Int(try integer(UInt32.self))
            let element = range.lowerBound + 1..<range.upperBound
            try align(Signature.alignment(sig[element.lowerBound]))
            let end = position + length
            guard length <= 1 << 26, end <= bytes.endIndex else { throw WireFormatError("array past the message's end") }
            // Fixed-size elements: their count is known before any is decoded.
            if let size = Self.fixedSize(sig[element.lowerBound]), length / size > budget { throw Self.tooManyValues }
            var items: [BusValue] = []
            while position < end { items.append(try value(sig, element, depth: depth + 1)) }
            guard position == end else { throw WireFormatError("array elements overrun its length") }
            return .array(element: String(decoding: sig[element], as: UTF8.self), items)
        case UInt8(ascii: "("), UInt8(ascii: "{"):
            try align(8)
            var fields: [BusValue] = []
            var i = range.lowerBound + 1
            while i < range.upperBound - 1 {
                let end = try Signature.completeTypeEnd(sig, from: i, depth: depth + 1)
                fields.append(try value(sig, i..<end, depth: depth + 1))
                i = end
            }
            if code == UInt8(ascii: "{") { return .dictEntry(fields[0], fields[1]) }
            return .structure(fields)
        default:
            throw WireFormatError("unsupported type code \(code)")
        }
    }

    static let tooManyValues = WireFormatError("more than \(maxValues) values in one message")

    /// The size of a value of a basic fixed-size type, nil for the others.
    static func fixedSize(_ code: UInt8) -> Int? {
        switch code {
        case UInt8(ascii: "y"): return 1
        case UInt8(ascii: "n"), UInt8(ascii: "q"): return 2
        case UInt8(ascii: "b"), UInt8(ascii: "i"), UInt8(ascii: "u"): return 4
        case UInt8(ascii: "x"), UInt8(ascii: "t"), UInt8(ascii: "d"): return 8
        default: return nil
        }
    }

    /// Every value of a body with this signature.
    mutating func values(signature: String) throws -> [BusValue] {
        try Signature.split(signature).map { try value($0, 0..<$0.count) }
    }
}
