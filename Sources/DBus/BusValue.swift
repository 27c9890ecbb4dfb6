/// One D-Bus value with its type: what method handlers return, property getters produce,
/// signals carry and clients read back. `signature` is its D-Bus type signature.
public indirect enum BusValue: Equatable, Sendable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// An array; `element` is the element signature, needed to write an empty array.
    case array(element: String, [BusValue])
    /// `{kv}`, only as an array element.
    case dictEntry(BusValue, BusValue)
    case structure([BusValue])
    case variant(BusValue)

    public var signature: String {
        switch self {
        case .byte: return "y"
        case .bool: return "b"
        case .int16: return "n"
        case .uint16: return "q"
        case .int32: return "i"
        case .uint32: return "u"
        case .int64: return "x"
        case .uint64: return "t"
        case .double: return "d"
        case .string: return "s"
        case .objectPath: return "o"
        case .signature: return "g"
        case let .array(element, _): return "a" + element
        case let .dictEntry(k, v): return "{" + k.signature + v.signature + "}"
        case let .structure(fields): return "(" + fields.map(\.signature).joined() + ")"
        case .variant: return "v"
        }
    }

    /// `a{sv}`-style arrays: keys and values of an array of dict entries.
    public static func dictionary(_ key: String, _ value: String, _ entries: [(BusValue, BusValue)]) -> BusValue {
        .array(element: "{" + key + value + "}", entries.map { .dictEntry($0.0, $0.1) })
    }

    public static func strings(_ values: [String]) -> BusValue {
        .array(element: "s", values.map { .string($0) })
    }

    // MARK: reading back (nil when the value is of another type)

    public var string: String? {
        switch self {
        case let .string(s), let .objectPath(s), let .signature(s): return s
        case let .variant(v): return v.string
        default: return nil
        }
    }

    /// Any integer type, widened; nil for other types or when it does not fit.
    public var integer: Int64? {
        switch self {
        case let .byte(v): return Int64(v)
        case let .int16(v): return Int64(v)
        case let .uint16(v): return Int64(v)
        case let .int32(v): return Int64(v)
        case let .uint32(v): return Int64(v)
        case let .int64(v): return v
        case let .uint64(v): return Int64(exactly: v)
        case let .variant(v): return v.integer
        default: return nil
        }
    }

    public var uint64: UInt64? {
        if case let .uint64(v) = self { return v }
        if case let .variant(v) = self { return v.uint64 }
        return integer.flatMap { UInt64(exactly: $0) }
    }

    public var bool: Bool? {
        switch self {
        case let .bool(b): return b
        case let .variant(v): return v.bool
        default: return nil
        }
    }

    /// Elements of an array, fields of a struct, or the contents of a variant's array.
    public var elements: [BusValue]? {
        switch self {
        case let .array(_, items): return items
        case let .structure(fields): return fields
        case let .variant(v): return v.elements
        default: return nil
        }
    }

    /// An `a{sv}` (or any dict with string keys) as a Swift dictionary, variants unwrapped.
    public var stringKeyedDictionary: [String: BusValue]? {
        guard case let .array(_, items) = self else { return nil }
        var out: [String: BusValue] = [:]
        for item in items {
            guard case let .dictEntry(k, v) = item, let key = k.string else { return nil }
            if case let .variant(inner) = v { out[key] = inner } else { out[key] = v }
        }
        return out
    }
}
