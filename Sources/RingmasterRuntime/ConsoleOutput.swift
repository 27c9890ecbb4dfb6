import Glibc
import Systemd

/// Console mode (no journald): a child's stdout and stderr go into one pipe, and the daemon
/// copies each line to its own stderr prefixed `web.2 | `. The reader lives until EOF — that is,
/// until every process holding the write end (grandchildren too) has closed it — so a child's
/// last lines before it dies are never lost, even after its instance was restarted.
final class ConsoleOutput {
    private let fd: Int32
    private let prefix: [UInt8]
    private var pending: [UInt8] = []
    private var source: EventSource?
    private let loop: EventLoop
    private var closed = false
    private var sink: ConsoleSink { ConsoleSink.shared }
    /// a line longer than this is cut and written in pieces
    private static let maxLine = 64 * 1024

    /// Returns the write end for the child. The reader registers itself with the loop and
    /// with `ConsoleSink.shared.readers`, which keeps it alive until EOF.
    static func open(loop: EventLoop, label: String) throws -> Int32 {
        var fds: [Int32] = [-1, -1]
        // pipe2() is not visible from Swift here; the daemon is single-threaded, so nothing can
        // fork between pipe() and the fcntl()s.
        guard pipe(&fds) == 0 else {
            throw RuntimeError("pipe for \(label) output", errno: errno)
        }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // Our end never blocks the loop; the child's end blocks like any ordinary stdout.
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        let out = ConsoleOutput(fd: fds[0], label: label, loop: loop)
        do {
            try out.watch()
            ConsoleSink.shared.readers[ObjectIdentifier(out)] = out
        } catch {
            close(fds[0]); close(fds[1])
            throw error
        }
        return fds[1]
    }

    private init(fd: Int32, label: String, loop: EventLoop) {
        self.fd = fd
        self.prefix = Array((label + " | ").utf8)
        self.loop = loop
    }

    private func watch() throws {
        source = try loop.onReadable(fd: fd) { [unowned self] _ in self.drain() }
    }

    /// The daemon's stderr is not keeping up: stop reading (the child's writes block on its
    /// full pipe, as they would on a slow terminal of its own) until the sink has room again.
    private func pause() {
        source = nil
        sink.whenAccepting { [weak self] in
            guard let self, !self.closed else { return }
            try? self.watch()
        }
    }

    /// At exit: everything the pipe still holds, whatever the sink's queue.
    func readAll() {
        while !closed && readOnce() {}
    }

    deinit { close(fd) }

    private func drain() {
        // At most 256 KiB per dispatch: the fd is level-triggered, so a flooding child is read
        // again on the next iteration, after every other source (and the watchdog) had its turn.
        for _ in 0..<16 {
            guard sink.accepting else { pause(); return }
            guard readOnce() else { return }
        }
    }

    /// One read: false once there is nothing more for now (or ever).
    private func readOnce() -> Bool {
        var buf = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                emitLines(buf[0..<n])
                return true
            }
            if n < 0 && (errno == EINTR) { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            // EOF or error: flush what is left, even without a final newline
            if !pending.isEmpty { emit(pending[...]); pending.removeAll() }
            closed = true
            source = nil
            sink.readers[ObjectIdentifier(self)] = nil
            return false
        }
    }

    private func emitLines(_ chunk: ArraySlice<UInt8>) {
        var out: [UInt8] = []
        var start = chunk.startIndex
        for i in chunk.indices where chunk[i] == UInt8(ascii: "\n") {
            out += prefix
            out += pending
            out += chunk[start...i]
            pending.removeAll(keepingCapacity: true)
            start = i + 1
        }
        pending += chunk[start...]
        while pending.count >= Self.maxLine {
            out += prefix
            out += pending[0..<Self.maxLine]
            out.append(UInt8(ascii: "\n"))
            pending.removeFirst(Self.maxLine)
        }
        if !out.isEmpty { writeBytes(out) }
    }

    private func emit(_ line: ArraySlice<UInt8>) {
        writeBytes(prefix + Array(line) + [UInt8(ascii: "\n")])
    }

    private func writeBytes(_ bytes: [UInt8]) {
        sink.write(bytes)
    }
}

public struct RuntimeError: Error, CustomStringConvertible {
    public var description: String
    public init(_ what: String, errno e: Int32) { description = "\(what): \(errnoString(e))" }
    public init(_ message: String) { description = message }
}
