// A TOML 1.0 parser, written for positions: every key and value keeps its line:column.
// One pass over UTF-8 bytes, no recursion beyond TOML.maximumDepth, no input-dependent
// traps: the first syntax or redefinition error is thrown as a ConfigDiagnostic.
//
// Tables are built as reference nodes while parsing (headers and dotted keys re-enter
// them), then frozen into TOMLTable values. The TOML rules on redefinition hang on how a
// table came to be (`Origin`):
//   - `[a.b]` may traverse any table (implicit, header, dotted) or the last element of
//     an array of tables; it may define a table only if it is new or implicit.
//   - dotted keys `a.b = 1` may only enter tables that dotted keys made.
//   - inline tables and static arrays are values: sealed, nothing may be added to them.

typealias TOMLKeyPart = (name: String, location: SourceLocation)

struct TOMLParser {
    let bytes: [UInt8]
    let file: String
    var pos = 0
    var line = 1
    var column = 1

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes; self.file = file
    }

    // MARK: cursor

    var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }
    var atEnd: Bool { pos >= bytes.count }

    func peek(_ offset: Int = 0) -> UInt8? {
        let i = pos + offset
        return i < bytes.count ? bytes[i] : nil
    }

    /// Columns count Unicode scalars: continuation bytes do not move the column.
    mutating func advance() {
        guard pos < bytes.count else { return }
        let b = bytes[pos]
        pos += 1
        if b == .lf {
            line += 1; column = 1
        } else if b & 0xC0 != 0x80 {
            column += 1
        }
    }

    mutating func advance(by n: Int) { for _ in 0..<n { advance() } }

    /// A new run of string bytes starts at decoded offset `offset`, here (TOMLValue.stringSegments).
    func markSegment(_ offset: Int, in runs: inout [TOMLValue.StringSegment]) {
        runs.append(TOMLValue.StringSegment(offset: offset, location: location))
    }

    mutating func advance(to offset: Int) { while pos < offset && pos < bytes.count { advance() } }

    func fail(_ message: String, at location: SourceLocation? = nil) -> ConfigDiagnostic {
        ConfigDiagnostic(location ?? self.location, message)
    }

    /// What is at the cursor, for messages: "end of file", "end of line", "'x'", "U+0001".
    func describeCurrent() -> String {
        guard let c = peek() else { return "end of file" }
        if c == .lf || (c == .cr && peek(1) == .lf) { return "end of line" }
        if c >= 0x20 && c < 0x7F { return "'" + String(UnicodeScalar(c)) + "'" }
        if c < 0x80 { return "U+" + TOML.hex4(UInt32(c)) }
        var end = pos + 1
        while end < bytes.count && bytes[end] & 0xC0 == 0x80 && end - pos < 4 { end += 1 }
        let text = String(decoding: bytes[pos..<end], as: UTF8.self)
        let code = text.unicodeScalars.first.map { "U+" + TOML.hex4($0.value) } ?? "?"
        return "'" + text + "' (" + code + ")"
    }

    mutating func skipWhitespace() {
        while let c = peek(), c == .space || c == .tab { advance() }
    }

    /// A comment runs to the end of the line; control characters other than tab are not allowed.
    mutating func skipComment() throws(ConfigDiagnostic) {
        guard peek() == .hash else { return }
        advance()
        while let c = peek() {
            if c == .lf || (c == .cr && peek(1) == .lf) { return }
            if isControl(c) { throw fail("control character \(describeCurrent()) is not allowed in a comment") }
            advance()
        }
    }

    /// Whitespace, then an optional comment, then a newline or the end of the file.
    mutating func expectEndOfLine(after what: String) throws(ConfigDiagnostic) {
        skipWhitespace()
        try skipComment()
        guard let c = peek() else { return }
        if c == .lf { advance(); return }
        if c == .cr {
            guard peek(1) == .lf else { throw fail("carriage return must be followed by a newline") }
            advance(by: 2)
            return
        }
        throw fail("expected a newline after \(what), found \(describeCurrent())")
    }

    /// Inside arrays: whitespace, newlines and comments.
    mutating func skipBlank() throws(ConfigDiagnostic) {
        while let c = peek() {
            switch c {
            case .space, .tab, .lf: advance()
            case .cr:
                guard peek(1) == .lf else { throw fail("carriage return must be followed by a newline") }
                advance(by: 2)
            case .hash: try skipComment()
            default: return
            }
        }
    }

    // MARK: document

    mutating func parseDocument() throws(ConfigDiagnostic) -> TOMLTable {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }  // byte-order mark
        let root = TOMLTableNode(origin: .header, location: location, depth: 0)
        var current = root
        while let c = peek() {
            switch c {
            case .space, .tab:
                skipWhitespace()
            case .lf:
                advance()
            case .cr:
                guard peek(1) == .lf else { throw fail("carriage return must be followed by a newline") }
                advance(by: 2)
            case .hash:
                try skipComment()
            case .openBracket:
                current = try parseHeader(root: root)
                try expectEndOfLine(after: "a table header")
            default:
                try parseKeyValue(into: current)
                try expectEndOfLine(after: "a value")
            }
        }
        return root.freeze()
    }

    // MARK: keys

    /// `a`, `"a b"`, `'a'`, `a.b."c"` — with the position of each part.
    mutating func parseKey() throws(ConfigDiagnostic) -> [TOMLKeyPart] {
        var parts: [TOMLKeyPart] = []
        while true {
            skipWhitespace()
            let start = location
            let name: String
            switch peek() {
            case .quote?:
                if peek(1) == .quote && peek(2) == .quote { throw fail("a key cannot be a multi-line string") }
                var runs: [TOMLValue.StringSegment] = []
                name = try parseBasicString(runs: &runs)
            case .apostrophe?:
                if peek(1) == .apostrophe && peek(2) == .apostrophe { throw fail("a key cannot be a multi-line string") }
                name = try parseLiteralString()
            case let c? where isBareKeyByte(c):
                let from = pos
                while let c = peek(), isBareKeyByte(c) { advance() }
                name = String(decoding: bytes[from..<pos], as: UTF8.self)
            default:
                throw fail("expected a key, found \(describeCurrent())")
            }
            parts.append((name, start))
            if parts.count > TOML.maximumDepth { throw fail("key has more than \(TOML.maximumDepth) parts", at: start) }
            skipWhitespace()
            guard peek() == .dot else { return parts }
            advance()
        }
    }

    // MARK: tables

    /// `[a.b]` or `[[a.b]]`; returns the table that following key/values go into.
    mutating func parseHeader(root: TOMLTableNode) throws(ConfigDiagnostic) -> TOMLTableNode {
        let start = location
        advance()
        let isArray = peek() == .openBracket
        if isArray { advance() }
        let keys = try parseKey()
        guard peek() == .closeBracket else {
            throw fail("expected '\(isArray ? "]]" : "]")' to close the table header, found \(describeCurrent())")
        }
        advance()
        if isArray {
            guard peek() == .closeBracket else { throw fail("expected ']]' to close the array of tables header") }
            advance()
        }
        let shown = isArray ? "[[\(TOML.displayKey(keys.map(\.name)))]]" : "[\(TOML.displayKey(keys.map(\.name)))]"

        var node = root
        for (i, part) in keys.dropLast().enumerated() {
            if let slot = node.slots[part.name] {
                switch slot.child {
                case let .table(t):
                    node = t
                case let .tableArray(array):
                    guard let last = array.elements.last else { throw fail("empty array of tables", at: part.location) }
                    node = last
                case let .value(v):
                    let path = TOML.displayKey(keys.prefix(i + 1).map(\.name))
                    throw fail("cannot define \(shown): \"\(path)\" is already \(v.typeNameWithArticle) "
                               + "(defined at \(slot.keyLocation.line):\(slot.keyLocation.column))", at: part.location)
                }
            } else {
                let t = try newTable(.implicit, in: node, at: part.location)
                node.insert(part.name, .table(t), at: part.location)
                node = t
            }
        }

        guard let last = keys.last else { throw fail("expected a key", at: start) }
        if let slot = node.slots[last.name] {
            let defined = "\(slot.keyLocation.line):\(slot.keyLocation.column)"
            switch slot.child {
            case let .tableArray(array) where isArray:
                let element = try newTable(.header, in: node, at: start)
                array.elements.append(element)
                return element
            case let .table(t) where !isArray && t.origin == .implicit:
                t.origin = .header
                t.location = start
                node.slots[last.name]?.keyLocation = last.location
                return t
            case let .table(t):
                let how = t.origin == .dotted ? "by dotted keys " : ""
                throw fail("cannot define \(shown): table \"\(TOML.displayKey(keys.map(\.name)))\" was already "
                           + "defined \(how)at \(defined)", at: last.location)
            case .tableArray:
                throw fail("cannot define \(shown): \"\(TOML.displayKey(keys.map(\.name)))\" is already "
                           + "an array of tables (defined at \(defined))", at: last.location)
            case let .value(v):
                throw fail("cannot define \(shown): key \"\(TOML.displayKey(keys.map(\.name)))\" is already "
                           + "\(v.typeNameWithArticle) (defined at \(defined))", at: last.location)
            }
        }
        let table = try newTable(.header, in: node, at: start)
        if isArray {
            let array = TOMLTableArrayNode(location: start)
            array.elements.append(table)
            node.insert(last.name, .tableArray(array), at: last.location)
        } else {
            node.insert(last.name, .table(table), at: last.location)
        }
        return table
    }

    func newTable(_ origin: TOMLTableNode.Origin, in parent: TOMLTableNode,
                  at location: SourceLocation) throws(ConfigDiagnostic) -> TOMLTableNode {
        guard parent.depth < TOML.maximumDepth else {
            throw fail("tables nested more than \(TOML.maximumDepth) levels deep", at: location)
        }
        return TOMLTableNode(origin: origin, location: location, depth: parent.depth + 1)
    }

    /// `key = value`, where key may be dotted; does not consume the end of the line.
    mutating func parseKeyValue(into table: TOMLTableNode) throws(ConfigDiagnostic) {
        let keys = try parseKey()
        guard peek() == .equals else {
            throw fail("expected '=' after the key \"\(TOML.displayKey(keys.map(\.name)))\", found \(describeCurrent())")
        }
        advance()
        skipWhitespace()

        var node = table
        for (i, part) in keys.dropLast().enumerated() {
            if let slot = node.slots[part.name] {
                guard case let .table(t) = slot.child, t.origin == .dotted else {
                    let path = TOML.displayKey(keys.prefix(i + 1).map(\.name))
                    let what: String
                    switch slot.child {
                    case .table: what = "a table defined at"
                    case .tableArray: what = "an array of tables defined at"
                    case let .value(v): what = "\(v.typeNameWithArticle) defined at"
                    }
                    throw fail("cannot add keys to \"\(path)\" here: it is \(what) "
                               + "\(slot.keyLocation.line):\(slot.keyLocation.column)", at: part.location)
                }
                node = t
            } else {
                let t = try newTable(.dotted, in: node, at: part.location)
                node.insert(part.name, .table(t), at: part.location)
                node = t
            }
        }
        guard let last = keys.last else { throw fail("expected a key") }
        if let slot = node.slots[last.name] {
            throw fail("duplicate key \"\(TOML.displayKey(keys.map(\.name)))\" (first defined at "
                       + "\(slot.keyLocation.line):\(slot.keyLocation.column))", at: last.location)
        }
        let value = try parseValue(depth: node.depth + 1)
        node.insert(last.name, .value(value), at: last.location)
    }

    // MARK: values

    mutating func parseValue(depth: Int) throws(ConfigDiagnostic) -> TOMLValue {
        let start = location
        guard depth <= TOML.maximumDepth else {
            throw fail("values nested more than \(TOML.maximumDepth) levels deep")
        }
        guard let c = peek() else { throw fail("expected a value, found end of file") }
        switch c {
        case .quote:
            var runs: [TOMLValue.StringSegment] = []
            let text = peek(1) == .quote && peek(2) == .quote
                ? try parseMultilineBasicString(runs: &runs) : try parseBasicString(runs: &runs)
            return stringValue(text, runs, at: start)
        case .apostrophe:
            var runs: [TOMLValue.StringSegment] = []
            let text = peek(1) == .apostrophe && peek(2) == .apostrophe
                ? try parseMultilineLiteralString(runs: &runs) : try parseLiteralString()
            return stringValue(text, runs, at: start)
        case .openBracket:
            return try parseArray(depth: depth)
        case .openBrace:
            return try parseInlineTable(depth: depth)
        case .lf, .cr, .hash:
            throw fail("expected a value, found end of line")
        default:
            return try parseBareValue()
        }
    }

    private func stringValue(_ text: String, _ runs: [TOMLValue.StringSegment], at start: SourceLocation) -> TOMLValue {
        var value = TOMLValue(.string(text), at: start)
        value.stringSegments = runs
        return value
    }

    mutating func parseArray(depth: Int) throws(ConfigDiagnostic) -> TOMLValue {
        let start = location
        advance()
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            if atEnd { throw fail("unterminated array: missing ']'", at: start) }
            if peek() == .closeBracket { advance(); break }
            items.append(try parseValue(depth: depth + 1))
            try skipBlank()
            if peek() == .comma { advance(); continue }
            if peek() == .closeBracket { advance(); break }
            if atEnd { throw fail("unterminated array: missing ']'", at: start) }
            throw fail("expected ',' or ']' in the array, found \(describeCurrent())")
        }
        return TOMLValue(.array(items), at: start)
    }

    /// `{ a = 1, b.c = "x" }` — one line, no trailing comma (TOML 1.0); sealed once closed.
    mutating func parseInlineTable(depth: Int) throws(ConfigDiagnostic) -> TOMLValue {
        let start = location
        advance()
        let node = TOMLTableNode(origin: .inline, location: start, depth: depth)
        skipWhitespace()
        if peek() == .closeBrace {
            advance()
            return TOMLValue(.table(node.freeze()), at: start)
        }
        while true {
            skipWhitespace()
            if atEnd { throw fail("unterminated inline table: missing '}'", at: start) }
            if peek() == .closeBrace { throw fail("trailing comma is not allowed in an inline table") }
            if peek() == .lf || peek() == .cr { throw fail("an inline table must be on one line: missing '}'") }
            try parseKeyValue(into: node)
            skipWhitespace()
            switch peek() {
            case .comma?:
                advance()
            case .closeBrace?:
                advance()
                return TOMLValue(.table(node.freeze()), at: start)
            case nil:
                throw fail("unterminated inline table: missing '}'", at: start)
            case .lf?, .cr?, .hash?:
                throw fail("an inline table must be on one line: missing '}'")
            default:
                throw fail("expected ',' or '}' in the inline table, found \(describeCurrent())")
            }
        }
    }
}

@inline(__always)
func isControl(_ c: UInt8) -> Bool { (c < 0x20 && c != .tab) || c == 0x7F }

extension UInt8 {
    static let tab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let hash: UInt8 = 0x23
    static let apostrophe: UInt8 = 0x27
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let colon: UInt8 = 0x3A
    static let equals: UInt8 = 0x3D
    static let openBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let closeBracket: UInt8 = 0x5D
    static let underscore: UInt8 = 0x5F
    static let openBrace: UInt8 = 0x7B
    static let closeBrace: UInt8 = 0x7D
}
