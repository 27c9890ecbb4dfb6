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

    /// The native protocol's datagram for `fields` ("NAME=value\n", or for a value with a
    /// newline "NAME\n" + its length as 64-bit little endian + value + "\n"), as
    /// sd_journal_sendv writes it; nil for an invalid field name.
    public static func datagram(_ fields: [(String, String)]) -> [UInt8]? {
        guard !fields.isEmpty, fields.allSatisfy({ isValidFieldName($0.0) }) else { return nil }
        var out: [UInt8] = []
        for (name, value) in fields {
            out += name.utf8
            if value.utf8.contains(10) {
                out.append(10)
                withUnsafeBytes(of: UInt64(value.utf8.count).littleEndian) { out += $0 }
            } else {
                out.append(UInt8(ascii: "="))
            }
            out += value.utf8
            out.append(10)
        }
        return out
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

/// The daemon's own entries to journald without ever blocking: sd_journal_sendv waits
/// (unix_wait_for_peer) when journald's socket queue is full — a journald that is stopped
/// or slow stalled the whole daemon. Each entry is one datagram sent with MSG_DONTWAIT; one
/// that does not go out waits in a bounded queue, in order, until `flush()` (the owner calls
/// it when `fd` is writable; `onBacklog` says when to start watching). Past `maxQueuedBytes`
/// entries are dropped and counted; once the queue drains, one entry says how many.
public final class JournalWriter {
    public static let socketPath = "/run/systemd/journal/socket"
    /// What may wait for journald (~20,000 typical entries).
    public static let maxQueuedBytes = 4 << 20

    public let fd: Int32
    private let path: String
    private var queue: [[UInt8]] = []
    private var queueStart = 0
    private var queuedBytes = 0
    /// entries dropped since the last report
    public private(set) var dropped = 0
    /// Called once each time entries start waiting.
    public var onBacklog: (() -> Void)?

    public var isBacklogged: Bool { queueStart < queue.count }

    /// whether `fd` is connected to journald's socket
    private var connected = false

    public init(socketPath: String = JournalWriter.socketPath) {
        path = socketPath
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        // As libsystemd: a large send buffer, so an entry of up to a few MiB fits in one datagram.
        var size: Int32 = 8 << 20
        if fd >= 0, setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        connect()
    }

    /// Connected, poll() reports the socket writable only when journald's queue has room
    /// (unix_dgram_poll looks at the peer): the owner's EPOLLOUT watch then wakes when
    /// journald reads, not in a busy loop, as it would for an unconnected socket.
    private func connect() {
        guard fd >= 0 else { return }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: sa.sun_path) else { return }
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: pathBytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count + 1)
        connected = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        } == 0
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Sends (or queues) one entry; false for an invalid field name or an entry too large
    /// for a datagram. A journald that is not there at all drops entries silently, as
    /// libsystemd does.
    @discardableResult
    public func send(_ fields: [(String, String)]) -> Bool {
        guard let datagram = Journal.datagram(fields) else { return false }
        if isBacklogged { _ = flush() }
        if !isBacklogged {
            switch transmit(datagram) {
            case .sent, .noJournald: return true
            case .tooLarge: return false
            case .wouldBlock: break
            }
        }
        enqueue(datagram)
        return true
    }

    /// Sends what waits, in order, until the socket is full again; true once nothing waits.
    @discardableResult
    public func flush() -> Bool {
        while queueStart < queue.count {
            switch transmit(queue[queueStart]) {
            case .wouldBlock: return false
            case .sent, .noJournald, .tooLarge:
                queuedBytes -= queue[queueStart].count
                queue[queueStart] = []
                queueStart += 1
            }
        }
        queue = []
        queueStart = 0
        if dropped > 0, let report = Journal.datagram([
            ("MESSAGE", "ringmasterd: \(dropped) log entries dropped while journald did not take them"),
            ("PRIORITY", "4"), ("SYSLOG_IDENTIFIER", "ringmasterd"), ("RINGMASTER_EVENT", "log-dropped"),
        ]) {
            if transmit(report) == .wouldBlock { enqueue(report); return false }
            dropped = 0
        }
        return true
    }

    private func enqueue(_ datagram: [UInt8]) {
        guard queuedBytes + datagram.count <= Self.maxQueuedBytes else {
            dropped += 1
            return
        }
        let first = !isBacklogged
        queue.append(datagram)
        queuedBytes += datagram.count
        if first { onBacklog?() }
    }

    private enum Outcome { case sent, wouldBlock, noJournald, tooLarge }

    private func transmit(_ datagram: [UInt8]) -> Outcome {
        guard fd >= 0 else { return .noJournald }
        var reconnected = false
        while true {
            if !connected {
                connect()
                guard connected else { return .noJournald }
            }
            let n = datagram.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n >= 0 { return .sent }
            switch errno {
            case EINTR: continue
            case EAGAIN, ENOBUFS: return .wouldBlock
            case EMSGSIZE: return .tooLarge
            default:
                // ECONNREFUSED, ENOTCONN: journald restarted (a new socket at the path): once
                // more on a fresh connection; else there is no journald (libsystemd: silently).
                connected = false
                if reconnected { return .noJournald }
                reconnected = true
            }
        }
    }
}
