// The TOML document model: every key and every value carries the place it was written,
// so the config validator can point at `file:line:column` for any problem it finds.
// Parsing lives in TOMLParser.swift (structure) and TOMLScalars.swift (strings, numbers, dates).

/// A TOML date, time or date-time, kept as written. Config never accepts one, but a
/// TOML document may contain them.
public struct TOMLDateTime: Equatable, Hashable, Sendable {
    public enum Form: String, Equatable, Hashable, Sendable {
        case offsetDateTime = "offset date-time"
        case localDateTime = "local date-time"
        case localDate = "local date"
        case localTime = "local time"
    }
    public var form: Form
    /// exactly as written, e.g. "1979-05-27T07:32:00Z" or "1979-05-27 07:32:00"
    public var text: String
    public init(form: Form, text: String) { self.form = form; self.text = text }
}

public struct TOMLValue: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        case datetime(TOMLDateTime)
        /// a static array `[…]`, or an array of tables `[[…]]` (each element a `.table`)
        case array([TOMLValue])
        /// a `[header]` table, a table made by dotted keys, or an inline table `{…}`
        case table(TOMLTable)
    }

    public var kind: Kind
    /// where the value starts: its first character, the `[` of a table header or array,
    /// the `{` of an inline table; for a table made implicitly, the key that made it
    public var location: SourceLocation
    /// For a string: where each run of its decoded bytes was written (a new run at every
    /// escape and line break, and at the start of a multi-line string), so a message can
    /// point at a character inside it (`location(ofByte:)`). Empty for a one-line string
    /// without escapes (its characters start right after the quote) and for other values.
    /// Not part of `==`.
    public var stringSegments: [StringSegment] = []

    public struct StringSegment: Sendable {
        /// offset in the decoded string's UTF-8 bytes
        public var offset: Int
        public var location: SourceLocation
    }

    public init(_ kind: Kind, at location: SourceLocation) {
        self.kind = kind; self.location = location
    }

    public static func == (a: TOMLValue, b: TOMLValue) -> Bool { a.kind == b.kind && a.location == b.location }

    /// Where the character at UTF-8 offset `offset` of this string value is written; the
    /// value's own location when that is not known.
    public func location(ofByte offset: Int) -> SourceLocation {
        guard let text = string else { return location }
        var afterQuote = location
        afterQuote.column += 1
        let segment = stringSegments.last { $0.offset <= offset } ?? StringSegment(offset: 0, location: afterQuote)
        let run = text.utf8.dropFirst(segment.offset).prefix(max(0, offset - segment.offset))
        var at = segment.location
        at.column += run.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
        return at
    }

    /// "string", "integer", "float", "boolean", "datetime", "array", "table"
    public var typeName: String {
        switch kind {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .datetime: return "datetime"
        case .array: return "array"
        case .table: return "table"
        }
    }

    /// "a string", "an integer", … — for messages like "must be a string, not an integer"
    public var typeNameWithArticle: String {
        switch kind {
        case .integer, .array: return "an " + typeName
        default: return "a " + typeName
        }
    }

    public var string: String? { if case let .string(s) = kind { return s } else { return nil } }
    public var integer: Int64? { if case let .integer(i) = kind { return i } else { return nil } }
    public var float: Double? { if case let .float(d) = kind { return d } else { return nil } }
    public var boolean: Bool? { if case let .boolean(b) = kind { return b } else { return nil } }
    public var datetime: TOMLDateTime? { if case let .datetime(d) = kind { return d } else { return nil } }
    public var array: [TOMLValue]? { if case let .array(a) = kind { return a } else { return nil } }
    public var table: TOMLTable? { if case let .table(t) = kind { return t } else { return nil } }
}

/// One `key = value` of a table (or a sub-table / array of tables under its key).
public struct TOMLEntry: Equatable, Sendable {
    public var key: String
    /// where the key is written; for `[a.b]`, the `b` of the header that defined the table
    public var keyLocation: SourceLocation
    public var value: TOMLValue
    public init(key: String, keyLocation: SourceLocation, value: TOMLValue) {
        self.key = key; self.keyLocation = keyLocation; self.value = value
    }
}

/// A table: entries in the order their keys were first defined, looked up by key.
public struct TOMLTable: Equatable, Sendable {
    public private(set) var entries: [TOMLEntry] = []
    private var index: [String: Int] = [:]

    public init() {}

    public init(_ entries: [TOMLEntry]) {
        for entry in entries { set(entry) }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    public subscript(key: String) -> TOMLEntry? {
        guard let i = index[key] else { return nil }
        return entries[i]
    }

    /// Adds the entry, or replaces the entry with the same key where it stands.
    public mutating func set(_ entry: TOMLEntry) {
        if let i = index[entry.key] {
            entries[i] = entry
        } else {
            index[entry.key] = entries.count
            entries.append(entry)
        }
    }

    public static func == (a: TOMLTable, b: TOMLTable) -> Bool { a.entries == b.entries }
}

public enum TOML {
    /// Deepest nesting of tables and arrays a document may have.
    public static let maximumDepth = 128

    /// Parses a TOML 1.0 document; the first syntax error (or key/table redefinition)
    /// is thrown with its exact position.
    public static func parse(_ text: String, file: String) throws(ConfigDiagnostic) -> TOMLTable {
        var parser = TOMLParser(bytes: Array(text.utf8), file: file)
        return try parser.parseDocument()
    }

    /// Same, from raw bytes: invalid UTF-8 is a diagnostic at the first bad byte.
    public static func parse(bytes: [UInt8], file: String) throws(ConfigDiagnostic) -> TOMLTable {
        if let bad = firstInvalidUTF8Offset(bytes) {
            var parser = TOMLParser(bytes: bytes, file: file)
            parser.advance(to: bad)
            throw ConfigDiagnostic(parser.location, "invalid UTF-8")
        }
        var parser = TOMLParser(bytes: bytes, file: file)
        return try parser.parseDocument()
    }

    /// Shows a key path as it would be written in TOML: `services.web`, `services."a b"`.
    public static func displayKey(_ parts: [String]) -> String {
        parts.map(quotedKeyIfNeeded).joined(separator: ".")
    }

    static func quotedKeyIfNeeded(_ key: String) -> String {
        if !key.isEmpty && key.utf8.allSatisfy(isBareKeyByte) { return key }
        return quoted(key)
    }

    /// `s` as a double-quoted string that is valid TOML and valid JSON alike.
    public static func quoted(_ s: String) -> String { "\"" + escaped(s, quotes: true) + "\"" }

    /// `s` on one line: \n, \r, \t and every other control character (C0, DEL, C1, U+2028/9)
    /// escaped as TOML and JSON write them; with `quotes`, also `"` and `\`.
    public static func escaped(_ s: String, quotes: Bool) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"" where quotes: out += "\\\""
            case "\\" where quotes: out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                let v = scalar.value
                if v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || v == 0x2028 || v == 0x2029 {
                    out += "\\u" + hex4(v)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    static func hex4(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// Offset of the first byte that is not part of well-formed UTF-8, or nil.
    static func firstInvalidUTF8Offset(_ b: [UInt8]) -> Int? {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            var need = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            for k in 1...need {
                guard i + k < n else { return i }
                let cc = b[i + k]
                let (l, h): (UInt8, UInt8) = k == 1 ? (lo, hi) : (0x80, 0xBF)
                if cc < l || cc > h { return i }
            }
            i += need + 1
        }
        return nil
    }
}

@inline(__always)
func isBareKeyByte(_ c: UInt8) -> Bool {
    (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
}

// MARK: the tree while parsing

/// Tables under construction: headers and dotted keys re-enter them, so they are reference
/// nodes until `freeze()` turns the finished tree into TOMLTable values.
final class TOMLTableNode {
    enum Origin { case implicit, header, dotted, inline }
    enum Child {
        case value(TOMLValue)
        case table(TOMLTableNode)
        case tableArray(TOMLTableArrayNode)
    }
    struct Slot {
        var child: Child
        var keyLocation: SourceLocation
    }

    var origin: Origin
    var location: SourceLocation
    let depth: Int
    var order: [String] = []
    var slots: [String: Slot] = [:]

    init(origin: Origin, location: SourceLocation, depth: Int) {
        self.origin = origin; self.location = location; self.depth = depth
    }

    func insert(_ key: String, _ child: Child, at keyLocation: SourceLocation) {
        order.append(key)
        slots[key] = Slot(child: child, keyLocation: keyLocation)
    }

    /// Depth is bounded by TOML.maximumDepth, so this recursion is too.
    func freeze() -> TOMLTable {
        var table = TOMLTable()
        for key in order {
            guard let slot = slots[key] else { continue }
            let value: TOMLValue
            switch slot.child {
            case let .value(v):
                value = v
            case let .table(node):
                value = TOMLValue(.table(node.freeze()), at: node.location)
            case let .tableArray(array):
                value = TOMLValue(.array(array.elements.map { TOMLValue(.table($0.freeze()), at: $0.location) }),
                                  at: array.location)
            }
            table.set(TOMLEntry(key: key, keyLocation: slot.keyLocation, value: value))
        }
        return table
    }
}

final class TOMLTableArrayNode {
    let location: SourceLocation
    var elements: [TOMLTableNode] = []
    init(location: SourceLocation) { self.location = location }
}
