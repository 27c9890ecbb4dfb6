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
                       "GET /health?full=1 HTTP/1.1\r\nHost: localhost:8001\r\nUser-Agent: ringmaster-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n")
    }
}
