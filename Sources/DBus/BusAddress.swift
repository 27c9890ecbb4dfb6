import Glibc

/// D-Bus server addresses ("unix:path=/run/user/1000/bus;unix:abstract=/tmp/dbus-x,guid=…"):
/// the unix-socket ones, which is what a user bus is.
public enum BusAddress {
    public enum UnixSocket: Equatable {
        case path(String)
        case abstract(String)
    }

    /// The unix sockets of an address list, in order; other transports are skipped.
    public static func unixSockets(_ addresses: String) -> [UnixSocket] {
        addresses.split(separator: ";").compactMap { address -> UnixSocket? in
            guard address.hasPrefix("unix:") else { return nil }
            var keys: [Substring: String] = [:]
            for pair in address.dropFirst(5).split(separator: ",") {
                guard let eq = pair.firstIndex(of: "=") else { continue }
                guard let value = unescape(pair[pair.index(after: eq)...]) else { return nil }
                keys[pair[..<eq]] = value
            }
            if let path = keys["path"] { return .path(path) }
            if let name = keys["abstract"] { return .abstract(name) }
            return nil
        }
    }

    /// %XX-escapes what the specification does not allow unescaped in a value.
    public static func escape(_ value: String) -> String {
        var out = ""
        for b in value.utf8 {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "/"),
                 UInt8(ascii: "."), UInt8(ascii: "\\"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let digits = Array("0123456789abcdef")
                out += "%" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
            }
        }
        return out
    }

    /// Undoes %XX escapes; nil if one is malformed.
    static func unescape(_ value: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = value.utf8.makeIterator()
        while let b = bytes.next() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard let hi = bytes.next().flatMap(hexValue), let lo = bytes.next().flatMap(hexValue) else { return nil }
            out.append(hi << 4 | lo)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// connect(2) to `target`: 0, or -1 with errno set (ENAMETOOLONG for a path too long).
    static func connect(_ fd: Int32, to target: UnixSocket) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let name: [UInt8]
        switch target {
        case let .path(p): name = Array(p.utf8) + [0]
        case let .abstract(a): name = [0] + Array(a.utf8)
        }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard name.count <= capacity else { errno = ENAMETOOLONG; return -1 }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in name.enumerated() { raw[i] = b }
        }
        // Abstract names are not NUL-terminated: the length says where they end.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
    }
}
