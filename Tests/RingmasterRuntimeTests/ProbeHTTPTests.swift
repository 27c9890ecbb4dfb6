import Glibc
@testable import RingmasterRuntime
import RingmasterCore
import Systemd
import XCTest

/// The tcp/http probe on a real loop against a real listening socket on 127.0.0.1 (served
/// from the same loop), and the status-line verdicts.
final class ProbeHTTPTests: XCTestCase {
    func testStatusLineVerdicts() {
        let table: [(String, Bool, (Bool, String)?)] = [
            ("HTTP/1.1 200 OK\r\n", false, (true, "HTTP 200")),
            ("HTTP/1.0 302 Found\r\nLocation: /\r\n", false, (true, "HTTP 302")),
            ("HTTP/1.1 404 Not Found\n", false, (false, "HTTP 404")),
            ("HTTP/1.1 503 Service Unavailable\r\n", false, (false, "HTTP 503")),
            ("HTTP/1.1 204\r\n", false, (true, "HTTP 204")),
            ("HTTP/1.1 2", false, nil),
            ("HTTP/1.1 2", true, (false, "no HTTP status line in the first 10 bytes")),
            ("", true, (false, "the connection closed without a response")),
            ("SSH-2.0-OpenSSH\r\n", false, (false, "not an HTTP status line: \"SSH-2.0-OpenSSH\"")),
            ("HTTP/2 200\r\n", false, (false, "not an HTTP status line: \"HTTP/2 200\"")),
            ("HTTP/1.1 200\r\n", false, (true, "HTTP 200")),
            ("HTTP/1.1 2000 OK\r\n", false, (false, "not an HTTP status line: \"HTTP/1.1 2000 OK\"")),
            ("HTTP/1.1 20x OK\r\n", false, (false, "not an HTTP status line: \"HTTP/1.1 20x OK\"")),
            ("HTTP/1.1  200 OK\r\n", false, (false, "not an HTTP status line: \"HTTP/1.1  200 OK\"")),
        ]
        for (text, ended, expected) in table {
            let verdict = SocketProbe.statusVerdict(Array(text.utf8), ended: ended)
            XCTAssertEqual(verdict?.passed, expected?.0, text)
            XCTAssertEqual(verdict?.detail, expected?.1, text)
        }
    }

    /// A listening socket on 127.0.0.1 with an ephemeral port; `answer` (if any) is written to
    /// each connection accepted by the loop, which is then closed.
    private func listener(_ loop: EventLoop, answer: String?) throws -> (port: UInt16, fd: Int32, source: EventSource?) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &sa) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        XCTAssertTrue(bound)
        guard let answer else { return (UInt16(bigEndian: sa.sin_port), fd, nil) }
        let source = try loop.onReadable(fd: fd) { _ in
            let c = accept(fd, nil, nil)
            guard c >= 0 else { return }
            var request = [UInt8](repeating: 0, count: 1024)
            _ = recv(c, &request, request.count, 0) // the probe sent it right after connecting
            _ = answer.withCString { send(c, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            close(c)
        }
        return (UInt16(bigEndian: sa.sin_port), fd, source)
    }

    private func probe(_ loop: EventLoop, port: UInt16, request: [UInt8]?) throws -> (Bool, String) {
        var result: (Bool, String)?
        let run = SocketProbe.start(loop: loop, address: .tcp4(host: "127.0.0.1", port: port), request: request) { result = ($0, $1) }
        try loop.run(until: { result != nil })
        _ = run
        return try XCTUnwrap(result)
    }

    func testHTTPProbeAgainstALiveSocket() throws {
        let loop = try EventLoop()
        let url = try HTTPProbeURL.parse("http://127.0.0.1:1/healthz").get()
        let ok = try listener(loop, answer: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok")
        defer { close(ok.fd) }
        let r1 = try probe(loop, port: ok.port, request: SocketProbe.request(url))
        XCTAssertEqual(r1.0, true); XCTAssertEqual(r1.1, "HTTP 200")
        let bad = try listener(loop, answer: "HTTP/1.1 503 Service Unavailable\r\n\r\n")
        defer { close(bad.fd) }
        let r2 = try probe(loop, port: bad.port, request: SocketProbe.request(url))
        XCTAssertEqual(r2.0, false); XCTAssertEqual(r2.1, "HTTP 503")
    }

    func testTCPProbeConnectsOrIsRefused() throws {
        let loop = try EventLoop()
        let open = try listener(loop, answer: nil)
        let r1 = try probe(loop, port: open.port, request: nil)
        XCTAssertEqual(r1.0, true, r1.1)
        close(open.fd) // nothing listens there now
        let r2 = try probe(loop, port: open.port, request: nil)
        XCTAssertEqual(r2.0, false)
        XCTAssertEqual(r2.1.hasSuffix("Connection refused"), true, r2.1)
    }

    func testRequestIsMinimalHTTP11() throws {
        let url = try HTTPProbeURL.parse("http://localhost:8001/health?full=1").get()
        XCTAssertEqual(String(decoding: SocketProbe.request(url), as: UTF8.self),
                       "GET /health?full=1 HTTP/1.1\r\nHost: localhost:8001\r\nUser-Agent: ringmaster-probe\r\nAccept: */*\r\n\r\n")
    }

    // MARK: - response framing (keep-alive)

    private typealias Outcome = HTTPResponseReader.Outcome

    /// Feeds `text` in pieces of `piece` bytes (0: all at once), then EOF if `eof`.
    private func read(_ text: String, piece: Int = 0, eof: Bool = false) -> Outcome {
        var reader = HTTPResponseReader()
        let bytes = Array(text.utf8)
        let step = piece == 0 ? max(bytes.count, 1) : piece
        var i = 0
        while i < bytes.count {
            let chunk = Array(bytes[i..<min(i + step, bytes.count)])
            let outcome = chunk.withUnsafeBufferPointer { reader.feed($0) }
            if outcome != .needMore { return outcome }
            i += step
        }
        return eof ? reader.ended() : .needMore
    }

    func testResponseFraming() {
        let big = String(repeating: "x", count: 70_000)
        let table: [(String, Bool, Outcome, String)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, .done(passed: true, detail: "HTTP 200", reusable: true), "content-length"),
            ("HTTP/1.1 200 OK\r\ncontent-length:  0 \r\n\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: true), "empty body, odd case and spaces"),
            ("HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, .done(passed: true, detail: "HTTP 200", reusable: true), "bare LF"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false, .needMore, "body still coming"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", true, .done(passed: true, detail: "HTTP 200", reusable: false), "body cut short"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\na;x=y\r\n0123456789\r\n0\r\n\r\n", false,
             .done(passed: true, detail: "HTTP 200", reusable: true), "chunked, with an extension"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n", false,
             .done(passed: true, detail: "HTTP 200", reusable: true), "chunked, a trailer"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: false), "bad chunk size"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: false), "other coding"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: false), "both"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false, .done(passed: true, detail: "HTTP 200", reusable: false), "two lengths"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", false, .done(passed: true, detail: "HTTP 200", reusable: false), "close"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, Close\r\n\r\nok", false, .done(passed: true, detail: "HTTP 200", reusable: false), "close among tokens"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", false, .done(passed: true, detail: "HTTP 200", reusable: true), "keep-alive"),
            ("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, .done(passed: true, detail: "HTTP 200", reusable: false), "HTTP/1.0"),
            ("HTTP/1.1 200 OK\r\n\r\nbody until EOF", false, .done(passed: true, detail: "HTTP 200", reusable: false), "unframed"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: false), "oversized length"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11170\r\n\(big)\r\n0\r\n\r\n", false,
             .done(passed: true, detail: "HTTP 200", reusable: false), "oversized chunk"),
            ("HTTP/1.1 200 OK\r\nX-Big: \(big)\r\nContent-Length: 0\r\n\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: false), "oversized head"),
            ("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", false, .done(passed: true, detail: "HTTP 204", reusable: true), "204 has no body"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false, .done(passed: true, detail: "HTTP 200", reusable: false), "bytes after the end"),
            ("HTTP/1.1 503 Unavailable\r\nContent-Length: 2\r\n\r\nno", false, .done(passed: false, detail: "HTTP 503", reusable: false), "a failure closes"),
            ("HTTP/1.1 200 OK\r\nBroken header\r\n\r\n", false, .done(passed: true, detail: "HTTP 200", reusable: false), "malformed header"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false, .needMore, "head not over"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", true, .done(passed: true, detail: "HTTP 200", reusable: false), "EOF in the head"),
            ("", true, .done(passed: false, detail: "the connection closed without a response", reusable: false), "nothing"),
            (String(repeating: "y", count: 2000), false, .done(passed: false, detail: "no HTTP status line in the first 1024 bytes", reusable: false), "no status line"),
        ]
        for (text, eof, expected, label) in table {
            XCTAssertEqual(read(text, eof: eof), expected, label)
            // the same split across reads: every piece size from 1 to 7 bytes (bytes after the
            // end in a later read are the idle connection's business: it is then closed)
            for piece in 1...7 where label != "bytes after the end" {
                XCTAssertEqual(read(text, piece: piece, eof: eof), expected, "\(label), in pieces of \(piece)")
            }
        }
    }

    /// A keep-alive server on the loop: answers each request on a connection with `answer`,
    /// keeps the connection unless `closeAfter`; counts connections and requests.
    private final class KeepAliveServer {
        let fd: Int32
        let port: UInt16
        var accepted = 0
        var requests = 0
        var clients: [Int32: EventSource] = [:]
        var listening: EventSource?

        init(_ loop: EventLoop, answer: String, closeAfter: Bool) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let fd = fd
            let bound = withUnsafeMutablePointer(to: &sa) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            XCTAssertTrue(bound)
            port = UInt16(bigEndian: sa.sin_port)
            listening = try loop.onReadable(fd: fd) { [unowned self] _ in
                let c = accept(fd, nil, nil)
                guard c >= 0 else { return }
                _ = fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK)
                self.accepted += 1
                self.clients[c] = try? loop.onReadable(fd: c) { [unowned self] _ in
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let n = recv(c, &buf, buf.count, 0)
                    guard n > 0 else { self.clients[c] = nil; close(c); return }
                    self.requests += 1
                    _ = answer.withCString { send(c, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    if closeAfter { self.clients[c] = nil; close(c) }
                }
            }
        }

        /// Closes the connections it holds (as a server's idle timeout does).
        func dropClients() {
            for (c, _) in clients { close(c) }
            clients.removeAll()
        }

        deinit {
            dropClients()
            listening = nil
            close(fd)
        }
    }

    /// A keep-alive server answering `answer`, and a kept probe of it.
    private func keptProbe(_ loop: EventLoop, answer: String, closeAfter: Bool = false) throws -> (KeepAliveServer, SocketProbe) {
        let server = try KeepAliveServer(loop, answer: answer, closeAfter: closeAfter)
        let url = try HTTPProbeURL.parse("http://127.0.0.1:1/").get()
        return (server, SocketProbe(loop: loop, address: .tcp4(host: "127.0.0.1", port: server.port), request: SocketProbe.request(url)))
    }

    private func probeOnce(_ loop: EventLoop, _ socket: SocketProbe, now: USec) throws -> (Bool, String) {
        var result: (Bool, String)?
        if socket.run(now: now, { result = ($0, $1) }) {
            try loop.run(until: { result != nil })
        }
        return try XCTUnwrap(result)
    }

    func testKeepAliveReusesTheConnectionAndOpensAFreshOneEveryTenth() throws {
        let loop = try EventLoop()
        let (server, socket) = try keptProbe(loop, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        for i in 0..<25 {
            let r = try probeOnce(loop, socket, now: USec(i) * 1_000_000)
            XCTAssertEqual(r.0, true, r.1)
        }
        XCTAssertEqual(server.requests, 25)
        XCTAssertEqual(socket.connections, 3, "a fresh connection every \(SocketProbe.freshEvery) probes")
        try loop.run(until: { server.accepted == 3 })
        // … and after `freshAfter` whatever the count.
        _ = try probeOnce(loop, socket, now: 25 * 1_000_000 + SocketProbe.freshAfter)
        XCTAssertEqual(socket.connections, 4)
    }

    func testServerClosingTheKeptConnectionIsRetriedAfresh() throws {
        let loop = try EventLoop()
        let (server, socket) = try keptProbe(loop, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(try probeOnce(loop, socket, now: 0).0, true)
        // The server closes it while the prober is not looking (no loop turn in between): the
        // next probe's send or read meets the close, and it passes on a new connection.
        server.dropClients()
        let r = try probeOnce(loop, socket, now: 1_000_000)
        XCTAssertEqual(r.0, true, r.1)
        XCTAssertEqual(socket.connections, 2)
        XCTAssertEqual(server.requests, 2)
    }

    func testKeptConnectionClosedByTheServerBetweenProbesIsDropped() throws {
        let loop = try EventLoop()
        let (server, socket) = try keptProbe(loop, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(try probeOnce(loop, socket, now: 0).0, true)
        XCTAssertTrue(socket.isConnected, "kept after a framed HTTP/1.1 answer")
        // An idle timeout on the server's side: the loop sees the end, the probe drops it.
        server.dropClients()
        try loop.run(until: { !socket.isConnected })
        let r = try probeOnce(loop, socket, now: 1_000_000)
        XCTAssertEqual(r.0, true, r.1)
        XCTAssertEqual(socket.connections, 2)
        XCTAssertEqual(server.requests, 2)
    }

    func testServerClosingAfterEachResponseGetsAConnectionPerProbe() throws {
        let loop = try EventLoop()
        let (server, socket) = try keptProbe(loop, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", closeAfter: true)
        for i in 0..<5 {
            let r = try probeOnce(loop, socket, now: USec(i) * 1_000_000)
            XCTAssertEqual(r.0, true, r.1)
        }
        XCTAssertEqual(socket.connections, 5)
        XCTAssertEqual(server.requests, 5)
    }

    func testFailingAnswerClosesTheConnection() throws {
        let loop = try EventLoop()
        let (server, socket) = try keptProbe(loop, answer: "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
        for i in 0..<3 {
            let r = try probeOnce(loop, socket, now: USec(i) * 1_000_000)
            XCTAssertEqual(r.0, false); XCTAssertEqual(r.1, "HTTP 500")
        }
        XCTAssertEqual(socket.connections, 3)
        XCTAssertEqual(server.requests, 3)
    }
}
