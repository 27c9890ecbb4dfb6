/// One mapping of /proc/PID/smaps: its header line and the two sizes a trim looks at.
public struct SmapsMapping: Equatable, Sendable {
    public var start: UInt
    public var end: UInt
    /// "r-xp": read, write, execute, private/shared
    public var permissions: String
    /// the mapped file; "" for anonymous memory, "[heap]", "[stack]", "[vdso]"… for the kernel's
    public var path: String
    /// resident, in KiB
    public var rssKiB: Int
    /// private copies (copy-on-write of a file page, or anonymous memory), in KiB
    public var anonymousKiB: Int

    public init(start: UInt, end: UInt, permissions: String, path: String, rssKiB: Int = 0, anonymousKiB: Int = 0) {
        self.start = start; self.end = end; self.permissions = permissions; self.path = path
        self.rssKiB = rssKiB; self.anonymousKiB = anonymousKiB
    }

    public var isWritable: Bool { permissions.utf8.dropFirst().first != UInt8(ascii: "-") }
}

/// /proc/PID/smaps, and which of its mappings a working-set trim may drop (`WorkingSetTrim`).
public enum Smaps {
    /// The mappings in `text` (the whole file), in order. Lines that are neither a mapping
    /// header nor a "Name: N kB" field are skipped.
    public static func parse(_ text: String) -> [SmapsMapping] {
        var out: [SmapsMapping] = []
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if let mapping = header(line) {
                out.append(mapping)
            } else if !out.isEmpty, let (name, kib) = field(line) {
                if name.elementsEqual("Rss".utf8) { out[out.count - 1].rssKiB = kib }
                else if name.elementsEqual("Anonymous".utf8) { out[out.count - 1].anonymousKiB = kib }
            }
        }
        return out
    }

    /// What a trim may `madvise(MADV_DONTNEED)` among `mappings`: those of `file` with pages
    /// resident, not writable, and without a single anonymous page. Such a mapping holds
    /// exactly the file's bytes (text, read-only data, a RELRO page no relocation wrote), so
    /// dropping it loses nothing: a later access faults the same page back from the page
    /// cache. A mapping with anonymous pages (RELRO after relocation, a debugger's
    /// breakpoint) holds private copies that differ from the file, and a writable one can
    /// get them at any moment: dropping either would revert memory to the file's bytes.
    public static func trimmable(_ mappings: [SmapsMapping], file: String) -> [SmapsMapping] {
        mappings.filter { $0.path == file && $0.rssKiB > 0 && !$0.isWritable && $0.anonymousKiB == 0 }
    }

    // MARK: - lines

    /// "00400000-00a7b000 r-xp 00000000 fe:01 1234     /usr/bin/ringmasterd" (the path may
    /// contain spaces and end in " (deleted)"; it is absent for anonymous memory).
    static func header(_ line: Substring.UTF8View) -> SmapsMapping? {
        var rest = line[...]
        guard let range = token(&rest), let permissions = token(&rest),
              token(&rest) != nil, token(&rest) != nil, token(&rest) != nil else { return nil }
        guard let dash = range.firstIndex(of: UInt8(ascii: "-")),
              let start = hex(range[..<dash]), let end = hex(range[range.index(after: dash)...]),
              permissions.count == 4 else { return nil }
        let path = rest.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        return SmapsMapping(start: start, end: end, permissions: String(decoding: permissions, as: UTF8.self),
                            path: String(decoding: path, as: UTF8.self))
    }

    /// "Rss:                 932 kB" → ("Rss", 932)
    static func field(_ line: Substring.UTF8View) -> (Substring.UTF8View, Int)? {
        var rest = line[...]
        guard let name = token(&rest), name.last == UInt8(ascii: ":"), let value = token(&rest),
              let unit = token(&rest), unit.elementsEqual("kB".utf8) else { return nil }
        var n = 0
        for b in value {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            n = n &* 10 &+ Int(b - UInt8(ascii: "0"))
        }
        return (name.dropLast(), n)
    }

    /// The next space-separated word of `rest`, which then starts after it.
    private static func token(_ rest: inout Substring.UTF8View) -> Substring.UTF8View? {
        let isSpace = { (b: UInt8) in b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
        rest = rest.drop(while: isSpace)
        guard !rest.isEmpty else { return nil }
        let end = rest.firstIndex(where: isSpace) ?? rest.endIndex
        defer { rest = rest[end...] }
        return rest[..<end]
    }

    private static func hex(_ digits: Substring.UTF8View) -> UInt? {
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        var n: UInt = 0
        for b in digits {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): n = n << 4 | UInt(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): n = n << 4 | UInt(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): n = n << 4 | UInt(b - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        return n
    }
}
