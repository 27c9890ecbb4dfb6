import Glibc
import RingmasterCore
import Systemd

/// A `tcp` or `http` probe on the event loop: a non-blocking connect; for `http`, one
/// `GET … HTTP/1.1` with `Connection: close` and the status line read back (at most
/// `maximumResponse` bytes: the rest of the response is never read). 2xx and 3xx pass.
/// Its timeout is the probe's timer (`ProbeBoard`), which cancels it: the socket is closed.
final class SocketProbe: ProbeRun {
    private var fd: Int32
    private var source: EventSource?
    private let request: [UInt8]?
    private var buffer: [UInt8] = []
    private var connected = false
    private var done: ((Bool, String) -> Void)?

    /// epoll's EPOLLIN and EPOLLOUT (<sys/epoll.h>; Glibc does not export them)
    static let epollIn: UInt32 = 0x001
    static let epollOut: UInt32 = 0x004

    /// The bytes of the status line looked at, at most.
    static let maximumResponse = 1024

    private init(fd: Int32, request: [UInt8]?, done: @escaping (Bool, String) -> Void) {
        self.fd = fd; self.request = request; self.done = done
    }

    static func request(_ url: HTTPProbeURL) -> [UInt8] {
        Array(("GET \(url.path) HTTP/1.1\r\nHost: \(url.host)\r\nUser-Agent: ringmaster-probe\r\n"
               + "Accept: */*\r\nConnection: close\r\n\r\n").utf8)
    }

    /// Starts the probe. Returns it while in flight; nil when it is already over (`done` called).
    static func start(loop: EventLoop, address: ListenAddress, request: [UInt8]?,
                      done: @escaping (Bool, String) -> Void) -> ProbeRun? {
        let family: Int32
        switch address {
        case .tcp4: family = AF_INET
        case .tcp6: family = AF_INET6
        case .unix, .abstract: done(false, "not a TCP address"); return nil
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { done(false, "socket: \(errnoString())"); return nil }
        // Closed with a reset, as HAProxy closes its health checks: no FIN exchange and no
        // TIME_WAIT left behind, on either side, for a connection made every interval.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        let probe = SocketProbe(fd: fd, request: request, done: done)
        func connectTo<Address>(_ sa: Address) -> Int32 {
            withUnsafePointer(to: sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
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
            probe.finish(false, "connect to \(address): \(errnoString())")
            return nil
        }
        if r == 0 {
            probe.connected = true
            guard probe.afterConnect() else { return nil }
        } else if request != nil {
            // On loopback the handshake is usually over by the time connect() returns
            // (EINPROGRESS all the same): send now and skip the wake-up for EPOLLOUT.
            // Not yet connected: EAGAIN (or ENOTCONN), and we wait for EPOLLOUT as usual.
            switch probe.trySend() {
            case .sent: probe.connected = true
            case .notYet: break
            case let .failed(code, _): probe.finish(false, "connect to \(address): \(errnoString(code))"); return nil
            }
        }
        do {
            probe.source = try loop.onReadable(fd: fd, events: probe.connected ? SocketProbe.epollIn : SocketProbe.epollOut) {
                [weak probe] revents in probe?.ready(revents)
            }
        } catch {
            probe.finish(false, "\(error)")
            return nil
        }
        return probe
    }

    deinit { cancel() }

    func cancel() {
        done = nil
        source = nil
        if fd >= 0 { close(fd); fd = -1 }
    }

    private func finish(_ passed: Bool, _ detail: String) {
        let report = done
        cancel()
        report?(passed, detail)
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

    private func ready(_ revents: UInt32) {
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
        while fd >= 0 {
            let room = SocketProbe.maximumResponse - buffer.count
            let n = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: SocketProbe.maximumResponse) { chunk -> Int in
                let n = recv(fd, chunk.baseAddress, room, Int32(MSG_DONTWAIT))
                if n > 0 { buffer += chunk[0..<n] }
                return n
            }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { return }
                finish(false, "read: \(errnoString())")
                return
            }
            if let verdict = SocketProbe.statusVerdict(buffer, ended: n == 0 || buffer.count >= SocketProbe.maximumResponse) {
                finish(verdict.passed, verdict.detail)
                return
            }
            if n == 0 { return } // (statusVerdict decides at the end)
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
