import Glibc
import RingmasterRuntime
import Systemd
import XCTest

final class NotifySocketTests: XCTestCase {
    /// Waits (bounded) until the socket is readable, then drains it.
    private func receive(_ socket: NotifySocket, atLeast count: Int = 1) -> [(message: String, pid: Int32, uid: UInt32)] {
        var all: [(message: String, pid: Int32, uid: UInt32)] = []
        let deadline = monotonicNow() + 10_000_000
        while all.count < count && monotonicNow() < deadline {
            var p = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 100)
            all += socket.receive()
        }
        return all
    }

    func testAddressIsUniqueAndAbstract() throws {
        let a = try NotifySocket(), b = try NotifySocket()
        XCTAssertTrue(a.address.hasPrefix("@ringmaster/\(getpid())/"), a.address)
        XCTAssertNotEqual(a.address, b.address)
        XCTAssertTrue(a.receive().isEmpty, "nothing pending, and no blocking")
    }

    func testDatagramFromThisProcessCarriesOurCredentials() throws {
        let socket = try NotifySocket()
        try send("READY=1\nSTATUS=warming up", to: socket.address)
        try send("STOPPING=1", to: socket.address)
        let messages = receive(socket, atLeast: 2)
        XCTAssertEqual(messages.map(\.message), ["READY=1\nSTATUS=warming up", "STOPPING=1"])
        XCTAssertEqual(messages.map(\.pid), [getpid(), getpid()])
        XCTAssertEqual(messages.map(\.uid), [geteuid(), geteuid()])
        XCTAssertTrue(NotifySocket.isAuthorized(uid: messages[0].uid))
    }

    func testOversizedDatagramIsTruncated() throws {
        let socket = try NotifySocket()
        try send("STATUS=" + String(repeating: "x", count: 10_000), to: socket.address)
        let messages = receive(socket)
        XCTAssertEqual(messages.first?.message.utf8.count, NotifySocket.maxMessageSize)
    }

    /// The real systemd-notify (252) run as a child with NOTIFY_SOCKET set. It follows
    /// its message with "BARRIER=1" carrying a pipe fd and waits (5 s) until every copy of
    /// that fd is closed: receiving must close passed fds, or the child hangs.
    func testSystemdNotifyReadyFromAChild() throws {
        var previousMask = sigset_t(), chld = sigset_t()
        sigemptyset(&chld)
        sigaddset(&chld, SIGCHLD)
        pthread_sigmask(SIG_BLOCK, &chld, &previousMask)
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }

        let loop = try EventLoop()
        let socket = try NotifySocket()
        var messages: [(message: String, pid: Int32, uid: UInt32)] = []
        let readable = try loop.onReadable(fd: socket.fd) { _ in messages += socket.receive() }
        let started = monotonicNow()
        let child = try PosixSpawner().spawn(SpawnRequest(
            argv: ["systemd-notify", "--ready", "--status=up"],
            environment: ["PATH=/usr/bin:/bin", "NOTIFY_SOCKET=\(socket.address)"]))
        var exit: ChildExit?
        let watch = try loop.watchChild(pidfd: child.pidfd) { exit = $0 }
        try loop.run { exit != nil }
        XCTAssertEqual(exit?.isSuccess, true, "\(String(describing: exit))")
        XCTAssertLessThan(monotonicNow() - started, 4_000_000, "the barrier was released, not timed out")

        XCTAssertEqual(messages.map(\.message), ["READY=1\nSTATUS=up", "BARRIER=1"])
        XCTAssertEqual(messages.first?.uid, geteuid())
        // systemd-notify speaks for its parent (us) when privileged, else for itself.
        XCTAssertTrue([child.pid, getpid()].contains(messages.first?.pid ?? -1), "\(messages)")
        _ = (readable, watch)
    }

    private func send(_ message: String, to address: String) throws {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let name = [UInt8(0)] + Array(address.dropFirst().utf8)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: name) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count)
        let sent = withUnsafePointer(to: &sa) { sa in
            sa.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withCString { sendto(fd, $0, strlen($0), 0, sa, length) }
            }
        }
        XCTAssertEqual(sent, message.utf8.count, String(cString: strerror(errno)))
    }
}
