import Glibc
import Systemd
import XCTest

/// The daemon's journal writer against a "journald" that does not read: nothing blocks,
/// entries wait in order, and go out once it reads again.
final class JournalWriterTests: XCTestCase {
    func testNativeProtocolDatagram() {
        XCTAssertEqual(Journal.datagram([("MESSAGE", "hi"), ("PRIORITY", "6")]), Array("MESSAGE=hi\nPRIORITY=6\n".utf8))
        let multi = Journal.datagram([("MESSAGE", "a\nb")])!
        XCTAssertEqual(multi, Array("MESSAGE\n".utf8) + [3, 0, 0, 0, 0, 0, 0, 0] + Array("a\nb\n".utf8))
        XCTAssertNil(Journal.datagram([("_PID", "1")]))
    }

    func testAFullSocketQueuesInOrderWithoutBlockingAndFlushesLater() throws {
        var template = Array("/tmp/ringmaster-journal-XXXXXX".utf8CString)
        let dir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        let path = dir + "/socket"
        defer { unlink(path); rmdir(dir) }
        let server = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        defer { close(server) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        XCTAssertEqual(bound, 0)

        let writer = JournalWriter(socketPath: path)
        var backlogs = 0
        writer.onBacklog = { backlogs += 1 }
        let count = 5000
        let started = monotonicNow()
        for i in 0..<count { XCTAssertTrue(writer.send([("MESSAGE", "entry \(i)")])) }
        XCTAssertLessThan(monotonicNow() - started, 2_000_000, "sending blocked")
        XCTAssertTrue(writer.isBacklogged, "the peer's queue never filled: the test tests nothing")
        XCTAssertEqual(backlogs, 1)
        // Not writable while the reader does not read: an EPOLLOUT watch must not spin.
        var pfd = pollfd(fd: writer.fd, events: Int16(POLLOUT), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 100), 0, "the writer's socket polls writable with the peer's queue full")

        // The reader wakes up: everything arrives, in order.
        var received: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = monotonicNow() + 10_000_000
        while received.count < count && monotonicNow() < deadline {
            let n = recv(server, &buffer, buffer.count, 0)
            if n > 0 { received.append(String(decoding: buffer[..<n], as: UTF8.self)); continue }
            writer.flush()
        }
        XCTAssertEqual(received.count, count)
        XCTAssertEqual(received, (0..<count).map { "MESSAGE=entry \($0)\n" })
        XCTAssertTrue(writer.flush())
        XCTAssertFalse(writer.isBacklogged)
        XCTAssertEqual(writer.dropped, 0)
    }
}
