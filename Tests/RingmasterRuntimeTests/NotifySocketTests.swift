import Glibc
@testable import RingmasterRuntime
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

    func testAddressIsAUniquePathInAPrivateDirectoryAndGoesWithTheSocket() throws {
        var a: NotifySocket? = try NotifySocket()
        let b = try NotifySocket()
        let address = a!.address
        XCTAssertTrue(address.hasPrefix("/"), address)
        XCTAssertTrue(address.hasSuffix("/notify.\(getpid()).\(address.split(separator: ".").last ?? "")"), address)
        XCTAssertNotEqual(address, b.address)
        XCTAssertTrue(a!.receive().isEmpty, "nothing pending, and no blocking")
        var st = stat()
        let directory = String(address[..<address.lastIndex(of: "/")!])
        XCTAssertEqual(lstat(directory, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700)
        XCTAssertEqual(st.st_uid, geteuid())
        XCTAssertEqual(access(address, F_OK), 0)
        a = nil
        XCTAssertNotEqual(access(address, F_OK), 0, "the file outlived its socket")
    }

    /// XDG_RUNTIME_DIR when usable; else /run/user/UID only when it is ours and private.
    func testDirectoryCandidates() {
        XCTAssertEqual(NotifyDirectory.candidates(runtimeDirectory: "/run/user/4242/", uid: 4242).first, "/run/user/4242")
        XCTAssertFalse(NotifyDirectory.candidates(runtimeDirectory: "relative", uid: 4242).contains("relative"))
        XCTAssertFalse(NotifyDirectory.candidates(runtimeDirectory: "/" + String(repeating: "d", count: 80), uid: 4242)
            .contains { $0.count > 60 }, "too long for a socket path below it")
        XCTAssertEqual(NotifyDirectory.candidates(runtimeDirectory: nil, uid: 4242), [], "no /run/user/4242 of ours here")
    }

    /// An existing directory of the name: ours and made private again; someone else's (here a
    /// symlink): refused.
    func testAnExistingDirectoryIsMadePrivateAndASymlinkIsRefused() throws {
        var template = Array("/tmp/ringmaster-notify-XXXXXX".utf8CString)
        let base = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        defer { unlink(base + "/link"); rmdir(base + "/open"); rmdir(base) }
        XCTAssertEqual(mkdir(base + "/open", 0o777), 0)
        chmod(base + "/open", 0o777)
        XCTAssertEqual(try NotifyDirectory.privateDirectory(base + "/open"), base + "/open")
        var st = stat()
        XCTAssertEqual(lstat(base + "/open", &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700)
        XCTAssertEqual(symlink("/tmp", base + "/link"), 0)
        XCTAssertThrowsError(try NotifyDirectory.privateDirectory(base + "/link"))
        // A socket there: the path, and only one.
        do {
            let socket = try NotifySocket(directory: base + "/open")
            XCTAssertEqual(socket.address, base + "/open/notify.\(getpid()).\(socket.address.split(separator: ".").last!)")
        }
    }

    func testDatagramFromThisProcessCarriesOurCredentials() throws {
        let socket = try NotifySocket()
        try send("READY=1\nSTATUS=warming up", to: socket.address)
        try send("STOPPING=1", to: socket.address)
        let messages = receive(socket, atLeast: 2)
        XCTAssertEqual(messages.map(\.message), ["READY=1\nSTATUS=warming up", "STOPPING=1"])
        XCTAssertEqual(messages.map(\.pid), [getpid(), getpid()])
        XCTAssertEqual(messages.map(\.uid), [geteuid(), geteuid()])
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
        let name = Array(address.utf8)
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
