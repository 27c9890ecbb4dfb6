import Glibc
import RingmasterCore
import Systemd

/// A `tcp` or `http` probe of one instance on the event loop, kept from one probe to the next.
/// `tcp`: a non-blocking connect, closed at once. `http`: one `GET … HTTP/1.1` and the response
/// read as far as `HTTPResponseReader` needs (2xx and 3xx pass); when the response leaves the
/// connection open and framed (HTTP/1.1, no `Connection: close`, a `Content-Length` or
/// `chunked` body of at most 64 KiB), the socket stays open and registered, and the next probe
/// is one `send()` on it. A fresh connection is made for the first probe, after any failure or
/// timeout, after a response that cannot be reused, when the server closed the kept one, and
/// at least every `freshEvery` probes or `freshAfter` µs, so the server's accept path is
/// tested too. A kept connection the server closed (EOF, a reset, EPIPE before any byte of the
/// response) is retried at once on a fresh connection, within the same probe and timeout.
/// Its timeout is the probe's timer (`ProbeBoard`), which cancels it: the socket is closed.
final class SocketProbe: ProbeRun {
    private let loop: EventLoop
    let address: ListenAddress
    private let request: [UInt8]?
    private var fd: Int32 = -1
    private var source: EventSource?
    private var connected = false
    private var reader = HTTPResponseReader()
    private var done: ((Bool, String) -> Void)?
    /// the current probe was sent on a kept connection (a close before its answer is retried)
    private var onKeptConnection = false
    /// answers received on the current connection, and when it was opened
    private(set) var answers = 0
    private var openedAt: USec = 0
    /// connections opened since this probe was made (for tests and the log)
    private(set) var connections = 0
    /// a connection is open (in flight, or kept between probes)
    var isConnected: Bool { fd >= 0 }

    /// A fresh connection at least every this many probes …
    static let freshEvery = 10
    /// … or this often (µs), whichever comes first.
    static let freshAfter: USec = 60_000_000

    /// epoll's EPOLLIN and EPOLLOUT (<sys/epoll.h>; Glibc does not export them)
    static let epollIn: UInt32 = 0x001
    static let epollOut: UInt32 = 0x004

    init(loop: EventLoop, address: ListenAddress, request: [UInt8]?) {
        self.loop = loop; self.address = address; self.request = request
    }

    static func request(_ url: HTTPProbeURL) -> [UInt8] {
        Array("GET \(url.path) HTTP/1.1\r\nHost: \(url.host)\r\nUser-Agent: ringmaster-probe\r\nAccept: */*\r\n\r\n".utf8)
    }

    /// A one-off probe (made, run, not kept). Returns it while in flight; nil when it is
    /// already over (`done` called).
    static func start(loop: EventLoop, address: ListenAddress, request: [UInt8]?,
                      done: @escaping (Bool, String) -> Void) -> ProbeRun? {
        let probe = SocketProbe(loop: loop, address: address, request: request)
        return probe.run(now: 0, done) ? probe : nil
    }

    /// Runs one probe: on the kept connection if there is one fit for it, else on a new one.
    /// False when it is already over (`done` called).
    func run(now: USec, _ done: @escaping (Bool, String) -> Void) -> Bool {
        self.done = done
        reader = HTTPResponseReader()
        if fd >= 0 && (request == nil || answers >= SocketProbe.freshEvery || now &- openedAt >= SocketProbe.freshAfter) {
            closeConnection(graceful: true)
        }
        if fd >= 0 {
            onKeptConnection = true
            switch trySend() {
            case .sent: return true // (registered for EPOLLIN already)
            case .notYet, .failed: closeConnection() // closed by the server meanwhile: afresh
            }
        }
        onKeptConnection = false
        openedAt = now
        return connect()
    }

    deinit { cancel() }

    /// Ends the probe in flight without a result, and closes the connection.
    func cancel() {
        done = nil
        closeConnection()
    }

    /// Closed with a reset (no TIME_WAIT), or `graceful`ly (a FIN, as a client retiring a
    /// healthy kept connection does: the server sees an ordinary end, not an error to log).
    private func closeConnection(graceful: Bool = false) {
        source = nil
        if fd >= 0 {
            if graceful {
                var linger = Glibc.linger(l_onoff: 0, l_linger: 0)
                _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            }
            close(fd)
            fd = -1
        }
        connected = false
        answers = 0
    }

    private func finish(_ passed: Bool, _ detail: String, keep: Bool = false) {
        let report = done
        done = nil
        if passed && keep { answers += 1 } else { closeConnection() }
        report?(passed, detail)
    }

    /// A new connection for the probe in flight. False once over.
    private func connect() -> Bool {
        let family: Int32
        switch address {
        case .tcp4: family = AF_INET
        case .tcp6: family = AF_INET6
        case .unix, .abstract: finish(false, "not a TCP address"); return false
        }
        fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { finish(false, "socket: \(errnoString())"); return false }
        connections += 1
        // Closed with a reset, as HAProxy closes its health checks: no FIN exchange and no
        // TIME_WAIT left behind, on either side, for a connection made every interval.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        let fd = self.fd
        func connectTo<Address>(_ sa: Address) -> Int32 {
            withUnsafePointer(to: sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
            }
        }
        let r: Int32
        switch address {
        case let .tcp4(host, port):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            _ = inet_pton(AF_INET, host, &sa.sin_addr)
            r = connectTo(sa)
        case let .tcp6(host, port):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, host, &sa.sin6_addr)
            r = connectTo(sa)
        default:
            r = -1
        }
        if r != 0 && errno != EINPROGRESS {
            finish(false, "connect to \(address): \(errnoString())")
            return false
        }
        if r == 0 {
            connected = true
            guard afterConnect() else { return false }
        } else if request != nil {
            // On loopback the handshake is usually over by the time connect() returns
            // (EINPROGRESS all the same): send now and skip the wake-up for EPOLLOUT.
            // Not yet connected: EAGAIN (or ENOTCONN), and we wait for EPOLLOUT as usual.
            switch trySend() {
            case .sent: connected = true
            case .notYet: break
            case let .failed(code, _): finish(false, "connect to \(address): \(errnoString(code))"); return false
            }
        }
        do {
            source = try loop.onReadable(fd: fd, events: connected ? SocketProbe.epollIn : SocketProbe.epollOut) {
                [weak self] revents in self?.ready(revents)
            }
        } catch {
            finish(false, "\(error)")
            return false
        }
        return true
    }

    /// Connected: a tcp probe has passed; an http one sends its request. False once over.
    private func afterConnect() -> Bool {
        guard request != nil else { finish(true, "connected"); return false }
        switch trySend() {
        case .sent: return true
        case .notYet: finish(false, "send: \(errnoString(EAGAIN))"); return false
        case let .failed(_, why): finish(false, why); return false
        }
    }

    private enum SendResult { case sent, notYet, failed(errno: Int32, String) }

    /// The whole request in one send (a few hundred bytes: it fits any socket buffer).
    private func trySend() -> SendResult {
        guard let request else { return .sent }
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if sent == request.count { return .sent }
        let code = errno
        if sent < 0 && (code == EAGAIN || code == ENOTCONN || code == EINPROGRESS) { return .notYet }
        return .failed(errno: code, sent < 0 ? "send: \(errnoString(code))" : "send: only \(sent) of \(request.count) bytes")
    }

    /// The kept connection ended before any byte of the answer: the server closed it (an idle
    /// timeout, a restart of its worker). Not a failure by itself: once more, afresh.
    private func retryAfresh() {
        closeConnection()
        onKeptConnection = false
        reader = HTTPResponseReader()
        _ = connect()
    }

    private func ready(_ revents: UInt32) {
        guard done != nil else {
            // Idle between probes: the server closed the kept connection (or sent what nobody
            // asked for). The next probe connects afresh.
            closeConnection()
            return
        }
        if !connected {
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { err = errno }
            guard err == 0 else { finish(false, "connect: \(errnoString(err))"); return }
            connected = true
            guard afterConnect() else { return }
            do { try source?.setIOEvents(SocketProbe.epollIn) } catch { finish(false, "\(error)") }
            return
        }
        while fd >= 0 && done != nil {
            let outcome = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk -> HTTPResponseReader.Outcome? in
                let n = recv(fd, chunk.baseAddress, chunk.count, Int32(MSG_DONTWAIT))
                if n > 0 { return reader.feed(UnsafeBufferPointer(rebasing: chunk[0..<n])) }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { return nil }
                let code = n < 0 ? errno : 0
                if onKeptConnection && reader.received == 0 && (code == 0 || code == ECONNRESET || code == EPIPE) {
                    retryAfresh()
                    return nil
                }
                if n < 0 {
                    finish(false, "read: \(errnoString(code))")
                    return nil
                }
                return reader.ended()
            }
            guard let outcome else { return }
            if case let .done(passed, detail, reusable) = outcome {
                finish(passed, detail, keep: reusable)
                return
            }
        }
    }

    /// The verdict of a response's first bytes: nil while the status line is incomplete and
    /// more may come.
    static func statusVerdict(_ bytes: [UInt8], ended: Bool) -> (passed: Bool, detail: String)? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            if !ended { return nil }
            return (false, bytes.isEmpty ? "the connection closed without a response"
                                         : "no HTTP status line in the first \(bytes.count) bytes")
        }
        var line = bytes[..<newline]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        // "HTTP/1.x NNN[ reason]", read as bytes (no string work for a probe that passes)
        let digits = line.dropFirst(9).prefix(3)
        guard line.starts(with: "HTTP/1.".utf8), line.count >= 12, line[line.startIndex + 8] == UInt8(ascii: " "),
              line.count == 12 || line[line.startIndex + 12] == UInt8(ascii: " "),
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            let text = String(decoding: line, as: UTF8.self)
            return (false, "not an HTTP status line: \"\(boundedEcho(text, limit: 80))\"")
        }
        let code = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return ((200...399).contains(code), "HTTP \(code)")
    }
}
