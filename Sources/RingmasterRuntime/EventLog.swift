import Glibc
import Systemd

/// Where the daemon's own events go: the journal with RINGMASTER_* fields, or the console.
public enum LogTarget: String, Sendable {
    case journal, console
}

/// syslog priorities
public enum Priority: Int32, Sendable {
    case err = 3, warning = 4, notice = 5, info = 6, debug = 7
}

/// One event of the daemon's own, with the fields SPEC.md names.
public struct LogEvent {
    public var priority: Priority
    public var message: String
    public var event: String
    public var service: String? = nil
    public var instance: Int? = nil
    public var pid: Int32? = nil
    public var exit: ExitStatusFields? = nil
    /// RINGMASTER_EXIT_REASON= (SPEC "Exit reasons"), on an exit
    public var exitReason: String? = nil

    public struct ExitStatusFields {
        public var code: String
        public var status: Int32
    }

    public init(_ priority: Priority, _ event: String, _ message: String,
                service: String? = nil, instance: Int? = nil, pid: Int32? = nil) {
        self.priority = priority; self.event = event; self.message = message
        self.service = service; self.instance = instance; self.pid = pid
    }
}

public final class EventLog {
    public let target: LogTarget
    /// debug events (every instance transition) are written only when asked for
    public var verbose = false
    /// sees every entry as it goes out, after any hold (tests)
    public var onEmit: ((LogEvent) -> Void)?

    public init(target: LogTarget) { self.target = target }

    // MARK: journald without blocking

    /// The journal target's writer: never blocks the loop (a stopped journald stalled the
    /// daemon in sd_journal_sendv); what waits goes out once journald reads again.
    private lazy var journal: JournalWriter = {
        let writer = JournalWriter()
        writer.onBacklog = { [weak self] in self?.watchJournal() }
        return writer
    }()
    private var loop: EventLoop?
    private var journalWatch: EventSource?

    /// Flushes entries that waited for journald when its socket is writable again (without a
    /// loop, at the next entry).
    public func attach(to loop: EventLoop) { self.loop = loop }

    /// At exit: gives journald up to `timeout` s to take what still waits.
    public func finish(timeout: Double) {
        guard target == .journal, journal.isBacklogged else { return }
        var pfd = pollfd(fd: journal.fd, events: Int16(POLLOUT), revents: 0)
        var left = Int32(timeout * 1000)
        while !journal.flush(), left > 0 {
            _ = poll(&pfd, 1, 50)
            left -= 50
        }
    }

    private func watchJournal() {
        guard journalWatch == nil, let loop else { return }
        journalWatch = try? loop.onReadable(fd: journal.fd, events: UInt32(POLLOUT)) { [weak self] _ in  // POLLOUT == EPOLLOUT
            guard let self, self.journal.flush() else { return }
            self.journalWatch?.cancel()
            self.journalWatch = nil
        }
    }

    // MARK: holding

    /// Entries written during a hold, and the work handed to `afterHold` (STATUS=, D-Bus
    /// signals), in the order they came.
    private enum Held {
        case entry(LogEvent)
        case call(() -> Void)
    }
    private var held: [Held] = []
    /// nested `hold()`s not yet released
    public private(set) var holds = 0

    /// Until the matching `release()` (holds nest), entries and `afterHold` work wait:
    /// the supervisor holds while it spawns, so that a child is exec'd before the daemon
    /// wakes journald, systemd and dbus-daemon to tell them about it. What is written and
    /// its order do not change, only when.
    public func hold() { holds += 1 }

    /// Ends one hold; the last one sends everything that waited, in order.
    public func release() {
        precondition(holds > 0, "EventLog.release() without hold()")
        holds -= 1
        guard holds == 0, !held.isEmpty else { return }
        let batch = held
        held = []
        for item in batch {
            switch item {
            case let .entry(e): emit(e)
            case let .call(work): work()
            }
        }
    }

    /// Runs `work` now, or, during a hold, after what was written before it.
    public func afterHold(_ work: @escaping () -> Void) {
        if holds > 0 { held.append(.call(work)) } else { work() }
    }

    public func write(_ e: LogEvent) {
        if holds > 0 { held.append(.entry(e)) } else { emit(e) }
    }

    private func emit(_ e: LogEvent) {
        onEmit?(e)
        if e.priority == .debug && !verbose && target == .console { return }
        switch target {
        case .journal:
            var fields: [(String, String)] = [
                ("MESSAGE", e.message),
                ("PRIORITY", String(e.priority.rawValue)),
                ("SYSLOG_IDENTIFIER", "ringmasterd"),
                ("RINGMASTER_EVENT", e.event),
            ]
            if let s = e.service { fields.append(("RINGMASTER_SERVICE", s)) }
            if let i = e.instance { fields.append(("RINGMASTER_INSTANCE", String(i))) }
            if let p = e.pid { fields.append(("RINGMASTER_PID", String(p))) }
            if let x = e.exit {
                fields.append(("RINGMASTER_EXIT_CODE", x.code))
                fields.append(("RINGMASTER_EXIT_STATUS", String(x.status)))
            }
            if let r = e.exitReason { fields.append(("RINGMASTER_EXIT_REASON", r)) }
            journal.send(fields)
        case .console:
            ConsoleSink.shared.write(Array(("ringmasterd: " + e.message + "\n").utf8), own: true)
        }
    }

    public func info(_ event: String, _ message: String, service: String? = nil) {
        write(LogEvent(.info, event, message, service: service))
    }

    public func error(_ event: String, _ message: String, service: String? = nil) {
        write(LogEvent(.err, event, message, service: service))
    }
}

/// Writes all of `s` to fd 2, retrying short writes and EINTR.
public func writeStderr(_ s: String) { writeAll(fd: 2, s) }

public func writeAll(fd: Int32, _ s: String) {
    var s = s
    s.withUTF8 { writeAll(fd: fd, UnsafeRawBufferPointer($0)) }
}

/// Writes all of `bytes` to `fd` (blocking), retrying short writes and EINTR; gives up on
/// any other error.
func writeAll(fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    var off = 0
    while off < bytes.count {
        let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 { if errno == EINTR { continue }; return }
        off += n
    }
}

public func errnoString(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }
