import Glibc

/// One mapping of /proc/PID/smaps: its header line and the two sizes a trim looks at.
public struct SmapsMapping: Equatable, Sendable {
    public var start: UInt
    public var end: UInt
    /// "r-xp": read, write, execute, private/shared
    public var permissions: String
    /// the mapped file; "" for anonymous memory, "[heap]", "[stack]", "[vdso]"… for the kernel's
    public var path: String
    /// resident, in KiB; nil if the block had no Rss line
    public var rssKiB: Int?
    /// private copies (copy-on-write of a file page, or anonymous memory), in KiB; nil if the
    /// block had no Anonymous line (then nothing is known, and a trim leaves it alone)
    public var anonymousKiB: Int?

    public init(start: UInt, end: UInt, permissions: String, path: String, rssKiB: Int? = nil, anonymousKiB: Int? = nil) {
        self.start = start; self.end = end; self.permissions = permissions; self.path = path
        self.rssKiB = rssKiB; self.anonymousKiB = anonymousKiB
    }

    public var isWritable: Bool { permissions.utf8.dropFirst().first != UInt8(ascii: "-") }
}

/// /proc/PID/smaps, and which of its mappings a working-set trim may drop (`WorkingSetTrim`).
public enum Smaps {
    /// The mappings in `text` (the whole file), in order. Lines that are neither a mapping
    /// header nor a "Name: N kB" field are skipped. One pass over the bytes: ~60 KB per
    /// trim, and it runs on the daemon's loop.
    public static func parse(_ text: String) -> [SmapsMapping] {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    /// What a trim may `madvise(MADV_DONTNEED)` among `mappings`: those of `file` with pages
    /// resident, not writable, and without a single anonymous page. Such a mapping holds
    /// exactly the file's bytes (text, read-only data, a RELRO page no relocation wrote), so
    /// dropping it loses nothing: a later access faults the same page back from the page
    /// cache. A mapping with anonymous pages (RELRO after relocation, a debugger's
    /// breakpoint) holds private copies that differ from the file, and a writable one can
    /// get them at any moment: dropping either would revert memory to the file's bytes.
    public static func trimmable(_ mappings: [SmapsMapping], file: String) -> [SmapsMapping] {
        mappings.filter { $0.path == file && ($0.rssKiB ?? 0) > 0 && !$0.isWritable && $0.anonymousKiB == 0 }
    }

    /// The beginning of `path` (/proc/self/smaps) through the mappings of `file`: reading
    /// stops at the first mapping after them, so the kernel writes out a handful of blocks
    /// instead of all ~70 (the executable is mapped first, at the lowest addresses; libraries
    /// come long after the heap). Whole file if `file` is never seen. Every block returned is
    /// complete (a block ends where the next header starts). nil if it cannot be read.
    public static func readHead(_ path: String, through file: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 << 10)
        var scanned = 0, seenFile = false
        let chunk = 4096
        while true {
            let old = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: chunk))
            let n = bytes.withUnsafeMutableBufferPointer { read(fd, $0.baseAddress! + old, chunk) }
            if n < 0 && errno == EINTR { bytes.removeLast(chunk); continue }
            bytes.removeLast(chunk - max(n, 0))
            if n < 0 { return nil }
            if n == 0 { break }
            // Look at the header lines completed by this read.
            let stop: Int? = bytes.withUnsafeBufferPointer { b in
                var lineStart = scanned
                while let newline = b[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                    defer { lineStart = newline + 1 }
                    guard let mapping = header(b, lineStart, newline) else { continue }
                    if mapping.path == file { seenFile = true } else if seenFile { return lineStart }
                }
                scanned = lineStart
                return nil
            }
            if let stop {
                bytes.removeLast(bytes.count - stop)
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - bytes

    static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> [SmapsMapping] {
        var out: [SmapsMapping] = []
        var lineStart = 0
        while lineStart < b.count {
            var lineEnd = lineStart
            while lineEnd < b.count && b[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            if let mapping = header(b, lineStart, lineEnd) {
                out.append(mapping)
            } else if !out.isEmpty, let (name, kib) = field(b, lineStart, lineEnd) {
                switch name {
                case .rss: out[out.count - 1].rssKiB = kib
                case .anonymous: out[out.count - 1].anonymousKiB = kib
                }
            }
        }
        return out
    }

    /// "00400000-00a7b000 r-xp 00000000 fe:01 1234     /usr/bin/ringmasterd" (the path may
    /// contain spaces and end in " (deleted)"; it is absent for anonymous memory). Addresses
    /// are lowercase hex, so no field line ("Anonymous:", "FilePmdMapped:") looks like one.
    static func header(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> SmapsMapping? {
        var i = from
        guard let start = hex(b, &i, to), i < to, b[i] == UInt8(ascii: "-") else { return nil }
        i += 1
        guard let end = hex(b, &i, to), i < to, b[i] == UInt8(ascii: " ") else { return nil }
        guard let perms = word(b, &i, to), perms.count == 4,
              word(b, &i, to) != nil, word(b, &i, to) != nil, word(b, &i, to) != nil else { return nil }
        while i < to && b[i] == UInt8(ascii: " ") { i += 1 }
        return SmapsMapping(start: start, end: end, permissions: String(decoding: UnsafeBufferPointer(rebasing: b[perms]), as: UTF8.self),
                            path: String(decoding: UnsafeBufferPointer(rebasing: b[i..<to]), as: UTF8.self))
    }

    enum Field { case rss, anonymous }

    /// "Rss:                 932 kB" → (.rss, 932); nil for the other fields.
    static func field(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> (Field, Int)? {
        var i = from
        guard let name = word(b, &i, to) else { return nil }
        let which: Field
        if equals(b, name, "Rss:") { which = .rss }
        else if equals(b, name, "Anonymous:") { which = .anonymous }
        else { return nil }
        guard let value = word(b, &i, to), let unit = word(b, &i, to), equals(b, unit, "kB") else { return nil }
        var n = 0
        for j in value {
            guard b[j] >= UInt8(ascii: "0"), b[j] <= UInt8(ascii: "9") else { return nil }
            n = n &* 10 &+ Int(b[j] - UInt8(ascii: "0"))
        }
        return (which, n)
    }

    /// Lowercase hex digits from `i` on (at least one, at most 16).
    private static func hex(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ to: Int) -> UInt? {
        var n: UInt = 0, digits = 0
        while i < to {
            let c = b[i]
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { n = n << 4 | UInt(c - UInt8(ascii: "0")) }
            else if c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f") { n = n << 4 | UInt(c - UInt8(ascii: "a") + 10) }
            else { break }
            digits += 1
            i += 1
        }
        return digits > 0 && digits <= 16 ? n : nil
    }

    /// The next space-separated word from `i` on, as a range of `b`; `i` then follows it.
    private static func word(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ to: Int) -> Range<Int>? {
        while i < to && (b[i] == UInt8(ascii: " ") || b[i] == UInt8(ascii: "\t")) { i += 1 }
        let start = i
        while i < to && b[i] != UInt8(ascii: " ") && b[i] != UInt8(ascii: "\t") { i += 1 }
        return i > start ? start..<i : nil
    }

    private static func equals(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ s: StaticString) -> Bool {
        guard range.count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        for (k, j) in range.enumerated() where b[j] != p[k] { return false }
        return true
    }
}
