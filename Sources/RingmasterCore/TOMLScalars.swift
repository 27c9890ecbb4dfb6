// TOML scalars: the four string forms with their escapes, booleans, integers (dec, hex,
// oct, bin), floats (incl. inf/nan), and dates/times (validated, kept as text).

extension TOMLParser {

    // MARK: strings

    /// `"…"`; the cursor is on the opening quote. `runs` gets a run for each escape (the
    /// characters before the first start right after the quote).
    mutating func parseBasicString(runs: inout [TOMLValue.StringSegment]) throws(ConfigDiagnostic) -> String {
        let start = location
        advance()
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw fail("unterminated string: missing '\"'", at: start) }
            switch c {
            case .quote:
                advance()
                return String(decoding: out, as: UTF8.self)
            case .backslash:
                markSegment(out.count, in: &runs)
                try parseEscape(into: &out)
                markSegment(out.count, in: &runs)
            case .lf, .cr:
                throw fail("unterminated string: missing '\"' before the end of the line "
                           + "(use \"\"\" for a multi-line string)", at: start)
            default:
                if isControl(c) { throw fail("control character \(describeCurrent()) must be escaped in a string") }
                out.append(c)
                advance()
            }
        }
    }

    /// `'…'`: no escapes.
    mutating func parseLiteralString() throws(ConfigDiagnostic) -> String {
        let start = location
        advance()
        let from = pos
        while true {
            guard let c = peek() else { throw fail("unterminated string: missing \"'\"", at: start) }
            if c == .apostrophe {
                let text = String(decoding: bytes[from..<pos], as: UTF8.self)
                advance()
                return text
            }
            if c == .lf || c == .cr {
                throw fail("unterminated string: missing \"'\" before the end of the line "
                           + "(use ''' for a multi-line string)", at: start)
            }
            if isControl(c) { throw fail("control character \(describeCurrent()) is not allowed in a literal string") }
            advance()
        }
    }

    /// `"""…"""`: a newline right after the opening quotes is dropped, CRLF becomes LF,
    /// a backslash at the end of a line eats the newline and the whitespace after it.
    mutating func parseMultilineBasicString(runs: inout [TOMLValue.StringSegment]) throws(ConfigDiagnostic) -> String {
        let start = location
        advance(by: 3)
        try skipFirstNewline()
        markSegment(0, in: &runs)
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw fail("unterminated multi-line string: missing '\"\"\"'", at: start) }
            switch c {
            case .quote:
                if try closeMultiline(.quote, into: &out) { return String(decoding: out, as: UTF8.self) }
            case .backslash:
                if lineEndingBackslash() {
                    advance()
                    skipWhitespace()
                    try skipBlankLines()
                } else {
                    markSegment(out.count, in: &runs)
                    try parseEscape(into: &out)
                }
                markSegment(out.count, in: &runs)
            default:
                try appendMultilineCharacter(c, into: &out, runs: &runs)
            }
        }
    }

    /// `'''…'''`: no escapes.
    mutating func parseMultilineLiteralString(runs: inout [TOMLValue.StringSegment]) throws(ConfigDiagnostic) -> String {
        let start = location
        advance(by: 3)
        try skipFirstNewline()
        markSegment(0, in: &runs)
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw fail("unterminated multi-line string: missing \"'''\"", at: start) }
            if c == .apostrophe {
                if try closeMultiline(.apostrophe, into: &out) { return String(decoding: out, as: UTF8.self) }
            } else {
                try appendMultilineCharacter(c, into: &out, runs: &runs)
            }
        }
    }

    private mutating func skipFirstNewline() throws(ConfigDiagnostic) {
        if peek() == .lf { advance() } else if peek() == .cr {
            guard peek(1) == .lf else { throw fail("carriage return must be followed by a newline") }
            advance(by: 2)
        }
    }

    private mutating func skipBlankLines() throws(ConfigDiagnostic) {
        while let c = peek() {
            switch c {
            case .space, .tab, .lf: advance()
            case .cr:
                guard peek(1) == .lf else { throw fail("carriage return must be followed by a newline") }
                advance(by: 2)
            default: return
            }
        }
    }

    /// A run of quotes inside a multi-line string: one or two are content; three close it,
    /// and up to two more just before them are still content (`""""a""""` is `"a"`).
    private mutating func closeMultiline(_ q: UInt8, into out: inout [UInt8]) throws(ConfigDiagnostic) -> Bool {
        var run = 0
        while peek(run) == q { run += 1 }
        if run < 3 {
            for _ in 0..<run { out.append(q) }
            advance(by: run)
            return false
        }
        let extra = min(run - 3, 2)
        for _ in 0..<extra { out.append(q) }
        advance(by: 3 + extra)
        return true
    }

    private mutating func appendMultilineCharacter(_ c: UInt8, into out: inout [UInt8],
                                                   runs: inout [TOMLValue.StringSegment]) throws(ConfigDiagnostic) {
        if c == .cr {
            guard peek(1) == .lf else { throw fail("carriage return must be followed by a newline") }
            out.append(.lf)
            advance(by: 2)
            markSegment(out.count, in: &runs)
            return
        }
        if c != .lf && isControl(c) { throw fail("control character \(describeCurrent()) must be escaped in a string") }
        out.append(c)
        advance()
        if c == .lf { markSegment(out.count, in: &runs) }
    }

    /// Backslash, optional spaces/tabs, then a newline.
    private func lineEndingBackslash() -> Bool {
        var i = 1
        while let c = peek(i), c == .space || c == .tab { i += 1 }
        return peek(i) == .lf || (peek(i) == .cr && peek(i + 1) == .lf)
    }

    /// `\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`; the cursor is on the backslash.
    private mutating func parseEscape(into out: inout [UInt8]) throws(ConfigDiagnostic) {
        let start = location
        advance()
        guard let c = peek() else { throw fail("unterminated string: escape at the end of the file", at: start) }
        let simple: UInt8?
        switch c {
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "t"): simple = .tab
        case UInt8(ascii: "n"): simple = .lf
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "r"): simple = .cr
        case .quote: simple = .quote
        case .backslash: simple = .backslash
        default: simple = nil
        }
        if let simple {
            out.append(simple)
            advance()
            return
        }
        guard c == UInt8(ascii: "u") || c == UInt8(ascii: "U") else {
            if c == .lf || c == .cr || c == .space || c == .tab {
                throw fail("a backslash can end a line only in a multi-line string (\"\"\"), "
                           + "with nothing but spaces after it", at: start)
            }
            throw fail("invalid escape sequence \\\(describeCurrent().trimmingQuotes)", at: start)
        }
        let digits = c == UInt8(ascii: "u") ? 4 : 8
        var value: UInt32 = 0
        for i in 1...digits {
            guard let d = peek(i), let h = hexDigitValue(d) else {
                throw fail("invalid escape: \\\(Character(UnicodeScalar(c))) needs \(digits) hex digits", at: start)
            }
            value = value << 4 | UInt32(h)
        }
        guard let scalar = Unicode.Scalar(value) else {
            let text = String(decoding: bytes[pos..<(pos + digits + 1)], as: UTF8.self)
            throw fail("invalid escape \\\(text): not a Unicode scalar value", at: start)
        }
        UTF8.encode(scalar) { out.append($0) }
        advance(by: digits + 1)
    }

    // MARK: booleans, numbers, dates

    /// Everything that is not a string, array or inline table: scanned as one token
    /// (plus "date time" with a space), then classified.
    mutating func parseBareValue() throws(ConfigDiagnostic) -> TOMLValue {
        let start = location
        let from = pos
        while let c = peek(), isBareValueByte(c) { advance() }
        if pos - from == 10, isDate(bytes[from..<pos]), peek() == .space,
           let d1 = peek(1), isDigit(d1), let d2 = peek(2), isDigit(d2), peek(3) == .colon {
            advance()
            while let c = peek(), isBareValueByte(c) { advance() }
        }
        let token = Array(bytes[from..<pos])
        let text = String(decoding: token, as: UTF8.self)
        guard !token.isEmpty else { throw fail("expected a value, found \(describeCurrent())") }

        switch text {
        case "true": return TOMLValue(.boolean(true), at: start)
        case "false": return TOMLValue(.boolean(false), at: start)
        case "inf", "+inf": return TOMLValue(.float(.infinity), at: start)
        case "-inf": return TOMLValue(.float(-.infinity), at: start)
        case "nan", "+nan", "-nan": return TOMLValue(.float(.nan), at: start)
        default: break
        }
        let looksLikeTime = token.count >= 3 && token[2] == .colon && token[0..<2].allSatisfy(isDigit)
        let looksLikeDate = token.count >= 5 && token[4] == .minus && token[0..<4].allSatisfy(isDigit)
        if looksLikeTime || looksLikeDate {
            guard let form = dateTimeForm(token) else { throw fail("invalid date or time \"\(text)\"", at: start) }
            return TOMLValue(.datetime(TOMLDateTime(form: form, text: text)), at: start)
        }
        guard isDigit(token[0]) || token[0] == .plus || token[0] == .minus else {
            throw fail("invalid value \"\(text)\" (strings need quotes)", at: start)
        }
        do throws(NumberError) {
            return TOMLValue(try parseNumber(token), at: start)
        } catch {
            throw fail("invalid number \"\(text)\": \(error.reason)", at: start)
        }
    }
}

struct NumberError: Error {
    var reason: String
}

/// `[+-]dec`, `0x…`, `0o…`, `0b…`, floats `[+-]int(.frac)?([eE][+-]?exp)?`; underscores
/// only between digits; no leading zeros in decimal integers and integer parts.
func parseNumber(_ t: [UInt8]) throws(NumberError) -> TOMLValue.Kind {
    var i = 0
    var negative = false
    if t[0] == .plus || t[0] == .minus { negative = t[0] == .minus; i = 1 }
    if i < t.count - 1, t[i] == UInt8(ascii: "0") {
        let radix: Int64?
        switch t[i + 1] {
        case UInt8(ascii: "x"): radix = 16
        case UInt8(ascii: "o"): radix = 8
        case UInt8(ascii: "b"): radix = 2
        default: radix = nil
        }
        if let radix {
            if i > 0 { throw NumberError(reason: "hexadecimal, octal and binary integers cannot have a sign") }
            return .integer(try parseInteger(t, from: 2, radix: radix, negative: false))
        }
    }
    if t[i...].contains(where: { $0 == .dot || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
        return .float(try parseFloat(t, from: i))
    }
    if t.count - i > 1 && t[i] == UInt8(ascii: "0") { throw NumberError(reason: "leading zeros are not allowed") }
    return .integer(try parseInteger(t, from: i, radix: 10, negative: negative))
}

/// DIGIT *( DIGIT / "_" DIGIT ) in the given radix, to the end of the token.
private func parseInteger(_ t: [UInt8], from start: Int, radix: Int64, negative: Bool) throws(NumberError) -> Int64 {
    guard start < t.count else { throw NumberError(reason: "no digits") }
    var value: Int64 = 0
    var previousWasDigit = false
    for i in start..<t.count {
        let c = t[i]
        if c == .underscore {
            guard previousWasDigit, i + 1 < t.count, t[i + 1] != .underscore else {
                throw NumberError(reason: "an underscore must be between two digits")
            }
            previousWasDigit = false
            continue
        }
        guard let d = hexDigitValue(c), Int64(d) < radix else {
            throw NumberError(reason: "'\(Character(UnicodeScalar(c)))' is not a digit here")
        }
        let (m, o1) = value.multipliedReportingOverflow(by: radix)
        let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(d)) : m.addingReportingOverflow(Int64(d))
        if o1 || o2 { throw NumberError(reason: "out of range for a 64-bit integer") }
        value = s
        previousWasDigit = true
    }
    return value
}

private func parseFloat(_ t: [UInt8], from start: Int) throws(NumberError) -> Double {
    var i = start
    var clean: [UInt8] = Array(t[0..<start])
    func digits(_ what: String) throws(NumberError) {
        let from = i
        while i < t.count, isDigit(t[i]) || t[i] == .underscore {
            if t[i] == .underscore {
                guard i > from, isDigit(t[i - 1]), i + 1 < t.count, isDigit(t[i + 1]) else {
                    throw NumberError(reason: "an underscore must be between two digits")
                }
            } else {
                clean.append(t[i])
            }
            i += 1
        }
        if i == from { throw NumberError(reason: "expected digits in the \(what)") }
    }
    let intStart = i
    try digits("integer part")
    if clean.count - start > 1 && t[intStart] == UInt8(ascii: "0") {
        throw NumberError(reason: "leading zeros are not allowed")
    }
    if i < t.count, t[i] == .dot {
        clean.append(.dot); i += 1
        try digits("fraction")
    }
    if i < t.count, t[i] == UInt8(ascii: "e") || t[i] == UInt8(ascii: "E") {
        clean.append(UInt8(ascii: "e")); i += 1
        if i < t.count, t[i] == .plus || t[i] == .minus { clean.append(t[i]); i += 1 }
        try digits("exponent")
    }
    guard i == t.count else { throw NumberError(reason: "unexpected '\(Character(UnicodeScalar(t[i])))'") }
    guard let d = Double(String(decoding: clean, as: UTF8.self)) else { throw NumberError(reason: "not a float") }
    return d
}

/// Which RFC 3339 form the token is, or nil if it is none (or names an impossible date).
func dateTimeForm(_ t: [UInt8]) -> TOMLDateTime.Form? {
    if t.count >= 3 && t[2] == .colon {
        return timeEnd(t, from: 0) == t.count ? .localTime : nil
    }
    guard t.count >= 10, isDate(t[0..<10]) else { return nil }
    let year = number(t, 0, 4), month = number(t, 5, 2), day = number(t, 8, 2)
    guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else { return nil }
    if t.count == 10 { return .localDate }
    guard [UInt8(ascii: "T"), UInt8(ascii: "t"), .space].contains(t[10]), let end = timeEnd(t, from: 11) else { return nil }
    if end == t.count { return .localDateTime }
    if end + 1 == t.count, t[end] == UInt8(ascii: "Z") || t[end] == UInt8(ascii: "z") { return .offsetDateTime }
    guard end + 6 == t.count, t[end] == .plus || t[end] == .minus,
          isDigit(t[end + 1]), isDigit(t[end + 2]), t[end + 3] == .colon, isDigit(t[end + 4]), isDigit(t[end + 5]),
          number(t, end + 1, 2) <= 23, number(t, end + 4, 2) <= 59 else { return nil }
    return .offsetDateTime
}

/// HH:MM:SS(.fraction)? starting at `from`; returns where it ends.
private func timeEnd(_ t: [UInt8], from s: Int) -> Int? {
    guard s + 8 <= t.count, isDigit(t[s]), isDigit(t[s + 1]), t[s + 2] == .colon, isDigit(t[s + 3]),
          isDigit(t[s + 4]), t[s + 5] == .colon, isDigit(t[s + 6]), isDigit(t[s + 7]) else { return nil }
    guard number(t, s, 2) <= 23, number(t, s + 3, 2) <= 59, number(t, s + 6, 2) <= 60 else { return nil }
    var i = s + 8
    if i < t.count, t[i] == .dot {
        i += 1
        let from = i
        while i < t.count, isDigit(t[i]) { i += 1 }
        if i == from { return nil }
    }
    return i
}

private func isDate<C: Collection>(_ t: C) -> Bool where C.Element == UInt8, C.Index == Int {
    guard t.count == 10 else { return false }
    let s = t.startIndex
    for k in 0..<10 {
        let c = t[s + k]
        if k == 4 || k == 7 { if c != .minus { return false } } else if !isDigit(c) { return false }
    }
    return true
}

private func number(_ t: [UInt8], _ from: Int, _ count: Int) -> Int {
    var v = 0
    for i in from..<(from + count) { v = v * 10 + Int(t[i] - UInt8(ascii: "0")) }
    return v
}

private func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

@inline(__always) private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

@inline(__always) private func isBareValueByte(_ c: UInt8) -> Bool {
    isBareKeyByte(c) || c == .plus || c == .dot || c == .colon
}

private func hexDigitValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

extension String {
    /// "'x'" → "x", for quoting a character inside another message.
    var trimmingQuotes: String {
        guard count >= 3, first == "'", let close = dropFirst().firstIndex(of: "'") else { return self }
        return String(self[index(after: startIndex)..<close])
    }
}
