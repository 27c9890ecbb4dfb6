import Glibc
import Systemd

/// The daemon's stderr in console mode, written without ever blocking the event loop.
///
/// A terminal on hold (Ctrl-S), a paused `less`, a reader that died without closing: a plain
/// blocking write(2) to stderr would stop the whole loop — no D-Bus answer, no child reaped or
/// restarted, no watchdog ping. Here bytes go out at once while the reader keeps up, and
/// otherwise wait in a queue that drains as fd 2 becomes writable. Past `highWater` queued
/// bytes the children's pipes are not read any more (ConsoleOutput pauses), so a slow reader
/// slows the children — as a pipe of their own would — and never the daemon. The daemon's own
/// lines are always queued, up to `ownLimit`; past that they are counted, and one line says
/// how many were dropped once the reader is back.
public final class ConsoleSink {
    public static let shared = ConsoleSink()

    static let highWater = 256 * 1024
    static let ownLimit = 4 * 1024 * 1024

    private var fd: Int32 = 2
    private var isSocket = false
    private var loop: EventLoop?
    private var writable: EventSource?
    private var queue: [UInt8] = []
    private var head = 0
    private var droppedLines = 0
    /// readers paused while the queue was over the high-water mark
    private var paused: [() -> Void] = []
    /// every reader of a child's output still open: they live here until EOF (and `finish`
    /// reads them to their end)
    var readers: [ObjectIdentifier: ConsoleOutput] = [:]

    var queued: Int { queue.count - head }
    /// whether children's output may be read now
    var accepting: Bool { queued < Self.highWater }

    /// From now on, writes never block: they are driven by `loop`. (Before — start-up, config
    /// errors — they block like any program's.)
    public func attach(to loop: EventLoop) {
        var st = stat()
        guard fstat(2, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            return // a file is never held up by a reader: plain writes
        case S_IFSOCK:
            isSocket = true // send(MSG_DONTWAIT): no flag on the shared socket
        default:
            // A pipe or a terminal: an open file description of our own, non-blocking, so the
            // flag does not change fd 2 of whoever shares it (the shell, the terminal).
            let own = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            guard own >= 0 else { return }
            fd = own
        }
        self.loop = loop
    }

    /// Writes (or queues) `bytes`; `own` for the daemon's own lines.
    public func write(_ bytes: [UInt8], own: Bool = false) {
        guard loop != nil else { bytes.withUnsafeBytes { writeAll(fd: 2, $0) }; return }
        if own && queued + bytes.count > Self.ownLimit {
            droppedLines += 1
            return
        }
        var start = 0
        if queued == 0 {
            start = attempt(bytes[...])
            if start == bytes.count { return }
        }
        queue.append(contentsOf: bytes[start...])
        armWritable()
    }

    /// Calls `resume` once children's output may be read again.
    func whenAccepting(_ resume: @escaping () -> Void) {
        if accepting { resume() } else { paused.append(resume) }
    }

    /// At exit: the children's pipes read to their end and everything queued written, for at
    /// most `timeout` seconds (a reader that never comes back must not keep the daemon).
    public func finish(timeout: Double) {
        let deadline = monotonicNow() + UInt64(timeout * 1_000_000)
        for reader in readers.values { reader.readAll() }
        guard loop != nil else { return }
        writable = nil
        while queued > 0 {
            let now = monotonicNow()
            guard now < deadline else { break }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, Int32(max(1, (deadline - now) / 1000))) <= 0 { break }
            flush()
        }
        if droppedLines > 0 { note() }
    }

    // MARK: -

    /// How much of `bytes` went out now (all of it when the reader is gone: nothing to wait for).
    private func attempt(_ bytes: ArraySlice<UInt8>) -> Int {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                let p = raw.baseAddress! + off, count = raw.count - off
                return isSocket ? send(fd, p, count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) : Glibc.write(fd, p, count)
            }
            if n > 0 { off += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return off }
            return bytes.count // EPIPE and the like: nobody will read it
        }
        return off
    }

    private func armWritable() {
        guard writable == nil, let loop else { return }
        writable = try? loop.onReadable(fd: fd, events: UInt32(POLLOUT) /* = EPOLLOUT */) { [unowned self] _ in self.flush() }
    }

    private func flush() {
        head += attempt(queue[head...])
        if head == queue.count {
            queue.removeAll(keepingCapacity: queue.capacity <= Self.highWater * 2)
            head = 0
            writable = nil
            if droppedLines > 0 { note() }
        } else if head >= 64 * 1024 {
            queue.removeFirst(head)
            head = 0
        }
        if accepting && !paused.isEmpty {
            let resume = paused
            paused.removeAll()
            for r in resume { r() }
        }
    }

    private func note() {
        let n = droppedLines
        droppedLines = 0
        write(Array("ringmasterd: \(n) of its own lines dropped: nobody read its output\n".utf8), own: true)
    }
}
