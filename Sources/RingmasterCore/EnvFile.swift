// `env-file`: files of KEY=VALUE lines, as docker compose, systemd and foreman users write
// them. The parser is pure (bytes in, variables out); the loader reads the files
// (ExternalFiles) and ConfigServiceKeys.swift puts the variables into ServiceConfig, so a
// changed env file makes a changed service on reload.
//
// The format (docs/config.md "env-file"), line by line:
//   - blank lines and lines whose first non-blank character is `#` are skipped;
//   - `export ` (with at least one space or tab after it) in front of a line is ignored;
//   - NAME: a letter or `_`, then letters, digits, `_` (a name the shell accepts);
//   - spaces and tabs around `=` are ignored;
//   - VALUE unquoted: the rest of the line, trailing spaces removed; a `#` after a space or
//     tab starts a comment; backslashes and quotes inside it are kept as they are;
//   - VALUE in single quotes: taken as written, newlines included, no escapes;
//   - VALUE in double quotes: `\\ \" \$ \` \n \t \r` are escapes, a backslash at the end of
//     a line joins the next one, newlines are kept; any other backslash is an error;
//   - after a closing quote only spaces, tabs and a `# comment` may follow;
//   - no `$VAR` expansion: a value is what is written;
//   - a later line for the same NAME wins; CRLF line ends are read as LF; a UTF-8
//     byte-order mark at the start is skipped.
// Every error is one ConfigDiagnostic at `envfile:line:column` (columns count characters).

/// One variable of an env file, with where its name is written.
public struct EnvFileEntry: Equatable, Sendable {
    public var name: String
    public var value: String
    public var location: SourceLocation
    public init(_ name: String, _ value: String, at location: SourceLocation) {
        self.name = name; self.value = value; self.location = location
    }
}

/// A file the config names, as given to the validator: its bytes, or why not.
public struct FileReadFailure: Error, Equatable, Sendable {
    /// the file does not exist (ENOENT/ENOTDIR): what a leading `-` forgives
    public var missing: Bool
    /// one line, e.g. "cannot open the file: Permission denied"
    public var message: String
    public init(missing: Bool, message: String) { self.missing = missing; self.message = message }
}

/// What validation may read besides the TOML files themselves (env files), and the home
/// directory `~` stands for. The loader reads from disk; `ConfigLoader.parse` reads nothing
/// unless given files in memory (tests).
public struct ExternalFiles: Sendable {
    /// $HOME of whoever loads the config; nil: `~` in a path is an error
    public var home: String?
    public var read: @Sendable (String) -> Result<[UInt8], FileReadFailure>

    public init(home: String?, read: @escaping @Sendable (String) -> Result<[UInt8], FileReadFailure>) {
        self.home = home; self.read = read
    }

    /// Reads nothing: every file is missing.
    public static let none = ExternalFiles(home: nil) { _ in
        .failure(FileReadFailure(missing: true, message: "cannot open the file: No such file or directory"))
    }

    /// Files from a dictionary (path → contents); any other path is missing.
    public static func inMemory(_ files: [String: String], home: String? = nil) -> ExternalFiles {
        ExternalFiles(home: home) { path in
            if let text = files[path] { return .success(Array(text.utf8)) }
            return .failure(FileReadFailure(missing: true, message: "cannot open the file: No such file or directory"))
        }
    }
}

public enum EnvFile {
    /// Larger than this is not an env file (and would be read into memory whole).
    public static let maximumSize = 1 << 20

    /// Parses an env file; the variables in file order (duplicates kept: applied in order,
    /// the later one wins).
    public static func parse(_ bytes: [UInt8], file: String) throws(ConfigDiagnostic) -> [EnvFileEntry] {
        try checkUTF8(bytes, file: file)
        var parser = EnvFileParser(cursor: TOMLParser(bytes: bytes, file: file))
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.cursor.pos = 3 }  // byte-order mark
        return try parser.parse()
    }

    /// Where `written` (an `env-file` entry without its leading `-`) points: `~` and `~/…`
    /// against `home`, a relative path against the directory of `configFile` (the file that
    /// names it). An error message if it cannot be resolved.
    public static func resolve(_ written: String, configFile: String, home: String?) -> Result<String, ConfigValueProblem> {
        if written.isEmpty { return .failure(ConfigValueProblem("env-file must not be an empty path")) }
        if written.utf8.contains(0) { return .failure(ConfigValueProblem("env-file must not contain a NUL character")) }
        if written.hasPrefix("~") {
            guard written == "~" || written.hasPrefix("~/") else {
                return .failure(ConfigValueProblem("env-file \"\(bounded(written))\": only ~ and ~/… are expanded, not ~user"))
            }
            guard let home, home.hasPrefix("/") else {
                return .failure(ConfigValueProblem("env-file \"\(bounded(written))\": ~ needs $HOME, which is not set"))
            }
            let base = home == "/" ? "" : home
            return .success(base + written.dropFirst(1))
        }
        if written.hasPrefix("/") { return .success(written) }
        guard let slash = configFile.lastIndex(of: "/") else { return .success(written) }
        return .success(String(configFile[...slash]) + written)
    }

    /// At most 64 characters of user input, for messages.
    static func bounded(_ text: String) -> String {
        text.count <= 64 ? text : String(text.prefix(61)) + "..."
    }

    /// At most 200 characters of a path, for messages: its end, which names the file.
    static func boundedPath(_ path: String) -> String {
        path.count <= 200 ? path : "..." + String(path.suffix(197))
    }

    /// The position of the first byte that is not UTF-8, as an error.
    private static func checkUTF8(_ bytes: [UInt8], file: String) throws(ConfigDiagnostic) {
        var line = 1, column = 1, i = 0
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case let .valid(scalar):
                if scalar.count == 1 && scalar.first == .lf { line += 1; column = 1 } else { column += 1 }
                i += scalar.count
            case .emptyInput:
                return
            case .error:
                throw ConfigDiagnostic(SourceLocation(file: file, line: line, column: column),
                                       "byte 0x\(String(bytes[i], radix: 16)) is not UTF-8")
            }
        }
    }
}

/// The env file grammar over TOMLParser's cursor (bytes, line, column in characters).
private struct EnvFileParser {
    var cursor: TOMLParser

    mutating func parse() throws(ConfigDiagnostic) -> [EnvFileEntry] {
        var entries: [EnvFileEntry] = []
        while true {
            skipSpaces()
            guard let c = cursor.peek() else { return entries }
            if try endOfLine() { continue }
            if c == .hash {
                skipToEndOfLine()
                continue
            }
            skipExport()
            entries.append(try assignment())
        }
    }

    private mutating func assignment() throws(ConfigDiagnostic) -> EnvFileEntry {
        let at = cursor.location
        let name = try variableName()
        skipSpaces()
        guard cursor.peek() == UInt8(ascii: "=") else {
            if cursor.peek() == nil || cursor.peek() == .lf || cursor.peek() == .cr {
                throw cursor.fail("\(name) has no '=': write \(name)= for an empty value")
            }
            throw cursor.fail("expected '=' after \(name), found \(cursor.describeCurrent())")
        }
        cursor.advance()
        let spaced = skipSpaces()
        let value: String
        switch cursor.peek() {
        case UInt8(ascii: "'"): value = try singleQuoted()
        case .quote: value = try doubleQuoted()
        default: return EnvFileEntry(name, try unquoted(spaced: spaced), at: at)
        }
        skipSpaces()
        if cursor.peek() == .hash { skipToEndOfLine() }
        if try !endOfLine() && cursor.peek() != nil {
            throw cursor.fail("unexpected \(cursor.describeCurrent()) after the closing quote of \(name)'s value; "
                              + "quote the whole value")
        }
        return EnvFileEntry(name, value, at: at)
    }

    private mutating func variableName() throws(ConfigDiagnostic) -> String {
        var name: [UInt8] = []
        while let c = cursor.peek(), isNameByte(c, first: name.isEmpty) {
            name.append(c)
            cursor.advance()
        }
        guard !name.isEmpty else {
            throw cursor.fail("expected a variable name (a letter or '_', then letters, digits, '_'), "
                              + "found \(cursor.describeCurrent())")
        }
        if let c = cursor.peek(), c != .space, c != .tab, c != UInt8(ascii: "="), c != .lf, c != .cr {
            throw cursor.fail("\(describe(c)) cannot be part of a variable name")
        }
        return String(decoding: name, as: UTF8.self)
    }

    /// The rest of the line without trailing blanks; a `#` after a blank starts a comment
    /// (`spaced`: blanks came right before the value).
    private mutating func unquoted(spaced: Bool) throws(ConfigDiagnostic) -> String {
        var out: [UInt8] = []
        var blankBefore = spaced
        while let c = cursor.peek(), c != .lf, !(c == .cr && cursor.peek(1) == .lf) {
            if c == .hash && blankBefore { skipToEndOfLine(); break }
            try checkCharacter(c)
            blankBefore = c == .space || c == .tab
            out.append(c)
            cursor.advance()
        }
        while out.last == .space || out.last == .tab { out.removeLast() }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func singleQuoted() throws(ConfigDiagnostic) -> String {
        let start = cursor.location
        cursor.advance()
        var out: [UInt8] = []
        while true {
            guard let c = cursor.peek() else { throw cursor.fail("unterminated value: missing \"'\"", at: start) }
            cursor.advance()
            if c == UInt8(ascii: "'") { return String(decoding: out, as: UTF8.self) }
            try appendQuoted(c, into: &out)
        }
    }

    private mutating func doubleQuoted() throws(ConfigDiagnostic) -> String {
        let start = cursor.location
        cursor.advance()
        var out: [UInt8] = []
        while true {
            guard let c = cursor.peek() else { throw cursor.fail("unterminated value: missing '\"'", at: start) }
            if c == .backslash {
                try escape(into: &out)
                continue
            }
            cursor.advance()
            if c == .quote { return String(decoding: out, as: UTF8.self) }
            try appendQuoted(c, into: &out)
        }
    }

    /// `\\ \" \$ \` \n \t \r`, or a backslash before a line end (both dropped).
    private mutating func escape(into out: inout [UInt8]) throws(ConfigDiagnostic) {
        let at = cursor.location
        cursor.advance()
        guard let c = cursor.peek() else { throw cursor.fail("unterminated value: escape at the end of the file", at: at) }
        switch c {
        case .backslash, .quote, UInt8(ascii: "$"), UInt8(ascii: "`"): out.append(c)
        case UInt8(ascii: "n"): out.append(.lf)
        case UInt8(ascii: "t"): out.append(.tab)
        case UInt8(ascii: "r"): out.append(.cr)
        case .lf: break
        case .cr where cursor.peek(1) == .lf: cursor.advance()
        default:
            throw cursor.fail("unknown escape \\\(cursor.describeCurrent().trimmingQuotes) in a double-quoted value "
                              + "(\\\\ \\\" \\$ \\` \\n \\t \\r; use single quotes for backslashes as written)", at: at)
        }
        cursor.advance()
    }

    /// A character inside quotes: CRLF is read as LF; NUL is an error.
    private mutating func appendQuoted(_ c: UInt8, into out: inout [UInt8]) throws(ConfigDiagnostic) {
        if c == .cr && cursor.peek() == .lf { return }
        if c == 0 { throw ConfigDiagnostic(cursor.location.movedLeft, "a value cannot contain a NUL character") }
        out.append(c)
    }

    private func checkCharacter(_ c: UInt8) throws(ConfigDiagnostic) {
        if c == 0 { throw cursor.fail("a value cannot contain a NUL character") }
        if c == .cr { throw cursor.fail("carriage return must be followed by a newline") }
    }

    private mutating func skipExport() {
        let word = Array("export".utf8)
        for (i, b) in word.enumerated() where cursor.peek(i) != b { return }
        guard let after = cursor.peek(word.count), after == .space || after == .tab else { return }
        cursor.advance(by: word.count)
        skipSpaces()
    }

    @discardableResult
    private mutating func skipSpaces() -> Bool {
        var any = false
        while let c = cursor.peek(), c == .space || c == .tab { cursor.advance(); any = true }
        return any
    }

    /// At LF or CRLF: steps over it, true. A lone CR is an error.
    private mutating func endOfLine() throws(ConfigDiagnostic) -> Bool {
        if cursor.peek() == .lf { cursor.advance(); return true }
        if cursor.peek() == .cr {
            guard cursor.peek(1) == .lf else { throw cursor.fail("carriage return must be followed by a newline") }
            cursor.advance(by: 2)
            return true
        }
        return false
    }

    private mutating func skipToEndOfLine() {
        while let c = cursor.peek(), c != .lf { cursor.advance() }
    }

    private func isNameByte(_ c: UInt8, first: Bool) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || c == UInt8(ascii: "_") || (!first && c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    private func describe(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7F ? "'" + String(UnicodeScalar(c)) + "'" : cursor.describeCurrent()
    }
}

private extension SourceLocation {
    /// One column to the left (the character just stepped over, on the same line).
    var movedLeft: SourceLocation { SourceLocation(file: file, line: line, column: max(1, column - 1)) }
}
