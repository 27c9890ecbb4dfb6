// Placeholders in config strings (command, environment values, working-directory, and
// later probe targets): `{socket.NAME.fd}`, `{instance}` and `{instance + N}`.
// Pure: `scan` finds them (for `ringctl check`, with byte offsets for exact columns),
// `substitute` replaces them for one instance at spawn (ServiceConfig.forInstance).
//
// Grammar (docs/config.md "Placeholders"):
//   {socket.NAME.fd}             the fd NAME is passed as: 3 + its index in `sockets`
//   {instance}                   the instance number, 0 … instances-1
//   {instance + N}, {instance - N}   that number plus or minus N (N: 1 to 9 decimal digits)
// Spaces and tabs are allowed between the parts ("{instance+8000}", "{ instance + 8000 }").
// A `{` that opens a placeholder is one followed by `socket.` or by optional blanks and
// `instance`; every other `{` is plain text (so `awk '{print $1}'` or JSON stay as written).
// An opened placeholder that is not one of the forms above is an error.

public enum Placeholder: Equatable, Sendable {
    /// {instance}: offset 0; {instance + 8000}: 8000; {instance - 1}: -1
    case instance(offset: Int)
    /// {socket.NAME.fd}
    case socket(name: String)
}

/// One placeholder found in a string: where (UTF-8 byte offsets), as written, and what it
/// is or why it is not valid.
public struct PlaceholderMatch: Equatable, Sendable {
    public var range: Range<Int>
    public var text: String
    public var result: Result<Placeholder, ConfigValueProblem>
}

public enum Placeholders {
    /// At most this many digits in `{instance + N}` (so the sum never overflows).
    static let maximumOffsetDigits = 9

    /// Every placeholder in `text`, in order.
    public static func scan(_ text: String) -> [PlaceholderMatch] {
        guard text.utf8.contains(.openBrace) else { return [] }
        let b = Array(text.utf8)
        var found: [PlaceholderMatch] = []
        var i = 0
        while i < b.count {
            guard b[i] == .openBrace, opensPlaceholder(b, at: i) else { i += 1; continue }
            guard let close = b[i...].firstIndex(of: .closeBrace) else {
                let written = String(decoding: b[i...], as: UTF8.self)
                found.append(PlaceholderMatch(range: i..<b.count, text: written,
                                              result: .failure(ConfigValueProblem(
                                                  "unterminated placeholder \"\(EnvFile.bounded(written))\": missing '}'"))))
                break
            }
            let written = String(decoding: b[i...close], as: UTF8.self)
            found.append(PlaceholderMatch(range: i..<(close + 1), text: written, result: parse(b[(i + 1)..<close], written: written)))
            i = close + 1
        }
        return found
    }

    /// `text` with every valid placeholder replaced for instance `instance` of a service
    /// passed `sockets`; invalid ones (rejected at load) and unknown sockets stay as written,
    /// and so do `{instance…}` when `instance` is nil.
    public static func substitute(_ text: String, instance: Int?, sockets: [String]) -> String {
        let found = scan(text)
        guard !found.isEmpty else { return text }
        let b = Array(text.utf8)
        var out: [UInt8] = []
        var at = 0
        for match in found {
            out += b[at..<match.range.lowerBound]
            at = match.range.upperBound
            switch match.result {
            case let .success(.instance(offset)):
                if let instance { out += Array(String(instance + offset).utf8) } else { out += b[match.range] }
            case let .success(.socket(name)):
                if let index = sockets.firstIndex(of: name) { out += Array(String(3 + index).utf8) } else { out += b[match.range] }
            case .failure:
                out += b[match.range]
            }
        }
        out += b[at...]
        return String(decoding: out, as: UTF8.self)
    }

    /// `{socket.` or `{` blanks `instance`.
    private static func opensPlaceholder(_ b: [UInt8], at i: Int) -> Bool {
        if b[(i + 1)...].starts(with: "socket.".utf8) { return true }
        var j = i + 1
        while j < b.count, b[j] == .space || b[j] == .tab { j += 1 }
        return b[j...].starts(with: "instance".utf8)
    }

    /// The inside of a placeholder (between the braces).
    private static func parse(_ inner: ArraySlice<UInt8>, written: String) -> Result<Placeholder, ConfigValueProblem> {
        let shown = EnvFile.bounded(written)
        if inner.starts(with: "socket.".utf8) {
            let name = inner.dropFirst("socket.".utf8.count)
            guard name.count > 3, name.suffix(3).elementsEqual(".fd".utf8) else {
                return .failure(ConfigValueProblem("unknown placeholder \"\(shown)\": expected {socket.NAME.fd}"))
            }
            return .success(.socket(name: String(decoding: name.dropLast(3), as: UTF8.self)))
        }
        var rest = inner.drop { $0 == .space || $0 == .tab }.dropFirst("instance".utf8.count)
        rest = rest.drop { $0 == .space || $0 == .tab }
        while let last = rest.last, last == .space || last == .tab { rest = rest.dropLast() }
        let expected = "expected {instance} or {instance + N} with N a whole number"
        guard let sign = rest.first else { return .success(.instance(offset: 0)) }
        guard sign == .plus || sign == .minus else {
            return .failure(ConfigValueProblem("bad placeholder \"\(shown)\": \(expected)"))
        }
        let digits = rest.dropFirst().drop { $0 == .space || $0 == .tab }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(ConfigValueProblem("bad placeholder \"\(shown)\": \(expected)"))
        }
        guard digits.count <= maximumOffsetDigits else {
            return .failure(ConfigValueProblem("bad placeholder \"\(shown)\": "
                                               + "N can have at most \(maximumOffsetDigits) digits"))
        }
        let n = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return .success(.instance(offset: sign == .minus ? -n : n))
    }
}

public extension ServiceConfig {
    /// This service as instance `instance` runs it: every placeholder in `command`,
    /// `environment` values and `working-directory` replaced (env-file values are taken as
    /// written). What the spawn of one instance uses.
    func forInstance(_ instance: Int) -> ServiceConfig {
        var copy = self
        let fill = { (text: String) in Placeholders.substitute(text, instance: instance, sockets: sockets) }
        copy.command = command.map(fill)
        copy.environment = environment.map { EnvironmentVariable($0.name, fill($0.value)) }
        copy.workingDirectory = workingDirectory.map(fill)
        copy.preStart = preStart.map(fill)
        return copy
    }

    /// `command` with each `{socket.NAME.fd}` replaced by the fd that socket is passed as
    /// (3 + its index in `sockets`), `{instance…}` left as written: use `forInstance`.
    var resolvedCommand: [String] {
        command.map { Placeholders.substitute($0, instance: nil, sockets: sockets) }
    }
}
