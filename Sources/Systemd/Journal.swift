import CSystemd
import Glibc

/// The daemon's own structured log entries (sd_journal_sendv), and what can be known
/// about journald's presence without talking to it.
public enum Journal {
    /// The socket children's stdout/stderr streams connect to.
    public static let streamSocketPath = "/run/systemd/journal/stdout"

    /// Sends one entry. `fields` are (NAME, value) pairs; names are A-Z, 0-9 and "_"
    /// (not starting with "_"), e.g. ("MESSAGE", "web.2 exited 1"), ("PRIORITY", "4"),
    /// ("RINGMASTER_SERVICE", "web"). Values may hold any bytes, newlines included.
    /// Returns false on a real error (invalid field name, message too large). Note that
    /// libsystemd drops entries silently, and reports success, when journald is not
    /// running at all: decide about a stderr fallback with `isReachable` instead.
    @discardableResult
    public static func send(_ fields: [(String, String)]) -> Bool {
        guard !fields.isEmpty, fields.allSatisfy({ isValidFieldName($0.0) }) else { return false }
        // One buffer for all "NAME=value" strings; the iovecs point into it.
        var bytes: [UInt8] = []
        var ranges: [(start: Int, count: Int)] = []
        for (name, value) in fields {
            let start = bytes.count
            bytes.append(contentsOf: name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: value.utf8)
            ranges.append((start, bytes.count - start))
        }
        return bytes.withUnsafeMutableBytes { buffer -> Bool in
            var iov = ranges.map { r in
                iovec(iov_base: buffer.baseAddress! + r.start, iov_len: r.count)
            }
            return sd_journal_sendv(&iov, Int32(iov.count)) >= 0
        }
    }

    /// journald's rule (journal_field_valid): 1-64 of A-Z, 0-9, "_", not starting with a
    /// digit or "_" (those are trusted fields only journald itself may set). journald
    /// would silently drop a field that breaks it; we refuse the entry instead.
    public static func isValidFieldName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), bytes[0] != UInt8(ascii: "_"),
              !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_")
        }
    }

    /// Whether our stderr is a journal stream: $JOURNAL_STREAM's "dev:ino" matches
    /// fstat(2), as systemd sets it for a service with StandardError=journal.
    public static var stderrIsJournal: Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    /// Whether journald's stdout stream socket exists (a container or a bare terminal
    /// session has none; output then falls back to the daemon's stderr).
    public static var isReachable: Bool {
        var st = stat()
        return stat(streamSocketPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
    }
}
