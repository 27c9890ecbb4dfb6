// `listen = "…"` of a [sockets.NAME] table:
//   "127.0.0.1:8080"    IPv4 dotted quad and port (host names are not resolved)
//   "[::1]:8080"        IPv6 literal in brackets and port
//   "/run/app.sock"     absolute path of a unix socket
//   "@app"              abstract unix socket name

public struct ListenAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum ListenAddressParser {
    /// sun_path holds 108 bytes including the terminating NUL (or the leading NUL of an abstract name).
    public static let maximumUnixPathLength = 107

    public static func parse(_ text: String) -> Result<ListenAddress, ListenAddressError> {
        func bad(_ why: String) -> Result<ListenAddress, ListenAddressError> {
            .failure(ListenAddressError("bad listen address \"\(text)\": \(why)"))
        }
        if text.isEmpty {
            return bad("expected \"host:port\", \"[::1]:port\", \"/abs/path.sock\" or \"@abstract\"")
        }
        if text.utf8.contains(0) { return bad("contains a NUL character") }
        if text.hasPrefix("/") {
            if text.utf8.count > maximumUnixPathLength {
                return bad("a unix socket path can have at most \(maximumUnixPathLength) bytes")
            }
            return .success(.unix(path: text))
        }
        if text.hasPrefix("@") {
            let name = String(text.dropFirst())
            if name.isEmpty { return bad("an abstract socket needs a name after '@'") }
            if name.utf8.count > maximumUnixPathLength - 1 {
                return bad("an abstract socket name can have at most \(maximumUnixPathLength - 1) bytes")
            }
            return .success(.abstract(name: name))
        }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return bad("missing ']' after the IPv6 address") }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return bad("expected ':port' after ']'") }
            guard isIPv6(host) else { return bad("\"\(host)\" is not an IPv6 address") }
            guard let port = port(rest.dropFirst()) else { return bad("the port must be a number from 1 to 65535") }
            return .success(.tcp6(host: host, port: port))
        }
        guard let colon = text.lastIndex(of: ":") else {
            if text.contains("/") { return bad("a unix socket path must be absolute") }
            return bad("expected \"host:port\", \"[::1]:port\", \"/abs/path.sock\" or \"@abstract\"")
        }
        let host = String(text[..<colon])
        if host.contains(":") { return bad("an IPv6 address needs brackets, as in \"[::1]:8080\"") }
        if host.isEmpty { return bad("missing host before ':' (use 0.0.0.0 for every interface)") }
        guard isIPv4(host) else {
            return bad("\"\(host)\" is not an IPv4 address (write e.g. 127.0.0.1; host names are not resolved)")
        }
        guard let port = port(text[text.index(after: colon)...]) else {
            return bad("the port must be a number from 1 to 65535")
        }
        return .success(.tcp4(host: host, port: port))
    }

    static func port(_ s: Substring) -> UInt16? {
        guard !s.isEmpty, s.utf8.count <= 5, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let n = Int(s), n >= 1, n <= 65535 else { return nil }
        return UInt16(n)
    }

    /// Four decimal octets 0-255, no leading zeros (so "010" is not mistaken for octal).
    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { p in
            guard !p.isEmpty, p.utf8.count <= 3, p.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let n = Int(p), n <= 255 else { return false }
            return p.utf8.count == 1 || p.utf8.first != 0x30
        }
    }

    /// RFC 4291 text form: eight hex groups, one "::" for a run of zero groups, an
    /// optional dotted IPv4 tail. No zone index.
    public static func isIPv6(_ s: String) -> Bool {
        let halves = s.splitOnce("::")
        let groups: [Substring]
        if let (head, tail) = halves {
            if tail.contains("::") { return false }
            let h = head.isEmpty ? [] : head.split(separator: ":", omittingEmptySubsequences: false)
            let t = tail.isEmpty ? [] : tail.split(separator: ":", omittingEmptySubsequences: false)
            guard let counted = count(h, allowIPv4Tail: false), let tc = count(t, allowIPv4Tail: true),
                  counted + tc <= 7 else { return false }
            groups = h + t
        } else {
            let all = s.split(separator: ":", omittingEmptySubsequences: false)
            guard let n = count(all, allowIPv4Tail: true), n == 8 else { return false }
            groups = all
        }
        return !groups.contains { $0.isEmpty }
    }

    /// How many 16-bit groups these parts make (an IPv4 tail makes two), or nil if malformed.
    private static func count(_ parts: [Substring], allowIPv4Tail: Bool) -> Int? {
        var n = 0
        for (i, p) in parts.enumerated() {
            if allowIPv4Tail, i == parts.count - 1, p.contains(".") {
                guard isIPv4(String(p)) else { return nil }
                n += 2
            } else {
                guard !p.isEmpty, p.utf8.count <= 4, p.utf8.allSatisfy({ isHex($0) }) else { return nil }
                n += 1
            }
        }
        return n
    }

    private static func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }
}

private extension String {
    /// Splits around the first occurrence of `separator`.
    func splitOnce(_ separator: String) -> (Substring, Substring)? {
        let s = Array(utf8), sep = Array(separator.utf8)
        guard s.count >= sep.count else { return nil }
        for i in 0...(s.count - sep.count) where s[i..<(i + sep.count)].elementsEqual(sep) {
            let a = utf8.index(startIndex, offsetBy: i)
            let b = utf8.index(a, offsetBy: sep.count)
            return (self[..<a], self[b...])
        }
        return nil
    }
}
