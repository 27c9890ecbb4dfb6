import Foundation
import Glibc
import RingmasterCore
@testable import RingmasterRuntime
import XCTest

/// A stand-in for systemd's notify socket: NOTIFY_SOCKET points at it for the duration of a
/// test, and it keeps every datagram with the fds that came along (SCM_RIGHTS).
final class FakeNotifySocket {
    let fd: Int32
    let address: String
    private let saved: String?
    private static var counter = 0

    struct Message {
        var text: String
        var fds: [Int32]
    }

    init() {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        precondition(fd >= 0)
        self.fd = fd
        FakeNotifySocket.counter += 1
        let name = "ringmaster-test-notify/\(getpid())/\(FakeNotifySocket.counter)"
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        precondition(r == 0)
        address = "@" + name
        saved = getenv("NOTIFY_SOCKET").map { String(cString: $0) }
        setenv("NOTIFY_SOCKET", address, 1)
    }

    deinit {
        if let saved { setenv("NOTIFY_SOCKET", saved, 1) } else { unsetenv("NOTIFY_SOCKET") }
        close(fd)
    }

    /// Every datagram waiting now; the fds are the test's to close.
    func receive() -> [Message] {
        var messages: [Message] = []
        while true {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var control = [UInt8](repeating: 0, count: 1024)
            var controlLength = 0
            let n: Int = buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { ctl in
                    var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &iov) { iovp in
                        var msg = msghdr()
                        msg.msg_iov = iovp
                        msg.msg_iovlen = 1
                        msg.msg_control = ctl.baseAddress
                        msg.msg_controllen = ctl.count
                        let n = recvmsg(fd, &msg, Int32(MSG_DONTWAIT | MSG_CMSG_CLOEXEC))
                        controlLength = n >= 0 ? Int(msg.msg_controllen) : 0
                        return n
                    }
                }
            }
            guard n >= 0 else { break }
            messages.append(Message(text: String(decoding: buffer[0..<n], as: UTF8.self),
                                    fds: rightsIn(control, length: controlLength)))
        }
        return messages
    }

    /// The SCM_RIGHTS fds in a control buffer (cmsghdr: size_t len, int level, int type, data
    /// aligned to size_t).
    private func rightsIn(_ control: [UInt8], length: Int) -> [Int32] {
        let align = MemoryLayout<Int>.size
        func aligned(_ n: Int) -> Int { (n + align - 1) & ~(align - 1) }
        let header = aligned(MemoryLayout<Int>.size + 8)
        var fds: [Int32] = []
        var offset = 0
        while offset + header <= length {
            let (cmsgLength, level, type) = control.withUnsafeBytes { raw in
                (raw.loadUnaligned(fromByteOffset: offset, as: Int.self),
                 raw.loadUnaligned(fromByteOffset: offset + align, as: Int32.self),
                 raw.loadUnaligned(fromByteOffset: offset + align + 4, as: Int32.self))
            }
            guard cmsgLength >= header else { break }
            if level == SOL_SOCKET && type == 1 /* SCM_RIGHTS */ {
                let count = (cmsgLength - header) / 4
                for i in 0..<count {
                    fds.append(control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + header + 4 * i, as: Int32.self) })
                }
            }
            offset += aligned(cmsgLength)
        }
        return fds
    }
}

final class SocketSetTests: XCTestCase {
    private var notify: FakeNotifySocket!

    override func setUp() {
        super.setUp()
        notify = FakeNotifySocket()
    }

    override func tearDown() {
        notify = nil
        super.tearDown()
    }

    private func listen(_ name: String, _ address: ListenAddress) -> SocketConfig {
        SocketConfig(name: name, source: .listen(address))
    }

    private func fromSystemd(_ name: String, _ fdName: String) -> SocketConfig {
        SocketConfig(name: name, source: .systemd(name: fdName))
    }

    /// A listening socket on 127.0.0.1 at a port the kernel picks, and that port.
    private func listeningTCP() throws -> (fd: Int32, port: UInt16) {
        let fd = try bindListenSocket(.tcp4(host: "127.0.0.1", port: 0))
        var sa = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: sa.sin_port))
    }

    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

    private func sameSocket(_ a: Int32, _ b: Int32) -> Bool { inode(of: a) == inode(of: b) }

    private func freePort() throws -> UInt16 { try freePorts(1)[0] }

    /// `count` different ports that were free a moment ago.
    private func freePorts(_ count: Int) throws -> [UInt16] {
        let held = try (0..<count).map { _ in try listeningTCP() }
        held.forEach { close($0.fd) }
        return held.map(\.port)
    }

    // MARK: start

    func testSystemdSocketTakesThePassedFDByNameAndUnusedOnesAreClosed() throws {
        let (http, _) = try listeningTCP()
        let (other, _) = try listeningTCP()
        let set = try SocketSet.open([fromSystemd("web", "http")], passed: [(http, "http"), (other, "other")])
        defer { close(http) }
        XCTAssertEqual(set.fds, ["web": http])
        XCTAssertEqual(set.sockets["web"]?.origin, .activation("http"))
        XCTAssertFalse(isOpen(other), "a passed fd nobody uses is closed")
        XCTAssertTrue(notify.receive().isEmpty, "nothing goes to the fd store for a socket systemd owns")
    }

    func testMissingSystemdSocketIsAnErrorListingThePassedNames() throws {
        let (http, _) = try listeningTCP()
        defer { close(http) }
        XCTAssertThrowsError(try SocketSet.open([fromSystemd("api", "api")], passed: [(http, "http")])) { error in
            XCTAssertEqual("\(error)", "socket api: systemd passed no socket named \"api\" (passed: \"http\")")
        }
        XCTAssertThrowsError(try SocketSet.open([fromSystemd("api", "api")], passed: [])) { error in
            XCTAssertEqual("\(error)", "socket api: systemd passed no socket named \"api\" (passed: none)")
        }
    }

    func testFDStoreNamesAreNotActivationNames() throws {
        // A stored fd is never taken for `systemd = "…"`, even by its full name.
        let (stored, _) = try listeningTCP()
        XCTAssertThrowsError(try SocketSet.open([fromSystemd("x", "http")], passed: [(stored, "ringmasterd/bound/http")])) { error in
            XCTAssertTrue("\(error)".hasSuffix("(passed: none)"), "\(error)")
        }
        close(stored)
    }

    func testListenSocketIsBoundAndPushedToTheFDStore() throws {
        let port = try freePort()
        var reports: [String] = []
        var set = try SocketSet.open([listen("http", .tcp4(host: "127.0.0.1", port: port))], passed: []) { reports.append($0) }
        defer { set.closeAll() }
        let fd = try XCTUnwrap(set.fds["http"])
        XCTAssertEqual(set.sockets["http"]?.origin, .bound)
        let messages = notify.receive()
        XCTAssertEqual(messages.map(\.text), ["FDSTORE=1\nFDNAME=ringmasterd/bound/http"])
        XCTAssertEqual(messages.first?.fds.count, 1)
        if let sent = messages.first?.fds.first {
            XCTAssertTrue(sameSocket(sent, fd), "the fd sent is the bound socket")
            close(sent)
        }
        XCTAssertTrue(reports.contains("socket http: bound 127.0.0.1:\(port)"), "\(reports)")
        XCTAssertTrue(reports.contains("socket http: kept in systemd's fd store as ringmasterd/bound/http"), "\(reports)")
    }

    func testStoredSocketIsTakenBackWhenItsAddressMatches() throws {
        let (stored, port) = try listeningTCP()
        var set = try SocketSet.open([listen("http", .tcp4(host: "127.0.0.1", port: port))],
                                     passed: [(stored, "ringmasterd/bound/http")])
        defer { set.closeAll() }
        XCTAssertEqual(set.fds["http"], stored)
        XCTAssertEqual(set.sockets["http"]?.origin, .fdStore)
        XCTAssertTrue(notify.receive().isEmpty, "the store already has it: nothing to send")
    }

    func testStoredSocketWithAnotherAddressIsDroppedAndTheNewOneStored() throws {
        let (stored, _) = try listeningTCP()
        let port = try freePort()
        var set = try SocketSet.open([listen("http", .tcp4(host: "127.0.0.1", port: port))],
                                     passed: [(stored, "ringmasterd/bound/http")])
        defer { set.closeAll() }
        let fd = try XCTUnwrap(set.fds["http"])
        XCTAssertNotEqual(fd, stored)
        XCTAssertFalse(isOpen(stored))
        let messages = notify.receive()
        XCTAssertEqual(messages.map(\.text), ["FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/http",
                                              "FDSTORE=1\nFDNAME=ringmasterd/bound/http"])
        if let sent = messages.last?.fds.first {
            XCTAssertTrue(sameSocket(sent, fd))
            close(sent)
        }
    }

    func testStoredSocketNoConfigWantsIsDroppedAndClosed() throws {
        let (stored, _) = try listeningTCP()
        var reports: [String] = []
        let set = try SocketSet.open([], passed: [(stored, "ringmasterd/bound/gone")]) { reports.append($0) }
        XCTAssertTrue(set.fds.isEmpty)
        XCTAssertFalse(isOpen(stored))
        XCTAssertEqual(notify.receive().map(\.text), ["FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/gone"])
        XCTAssertEqual(reports, ["socket gone: not in the config any more: dropped from systemd's fd store"])
    }

    func testRenamedSocketTakesTheStoredSocketOfItsAddress() throws {
        let (stored, port) = try listeningTCP()
        var set = try SocketSet.open([listen("web", .tcp4(host: "127.0.0.1", port: port))],
                                     passed: [(stored, "ringmasterd/bound/http")])
        defer { set.closeAll() }
        XCTAssertEqual(set.fds["web"], stored, "binding anew would fail: the stored socket holds the port")
        let messages = notify.receive()
        XCTAssertEqual(messages.map(\.text), ["FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/http",
                                              "FDSTORE=1\nFDNAME=ringmasterd/bound/web"])
        messages.flatMap(\.fds).forEach { close($0) }
    }

    func testUnixAndAbstractSocketsMatchByName() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/app.sock"
        let unixFD = try bindListenSocket(.unix(path: path))
        let abstractName = "ringmaster-test-\(getpid())-abstract"
        let abstractFD = try bindListenSocket(.abstract(name: abstractName))
        defer { close(unixFD); close(abstractFD) }
        XCTAssertTrue(socketMatches(unixFD, .unix(path: path)))
        XCTAssertFalse(socketMatches(unixFD, .unix(path: path + "x")))
        XCTAssertTrue(socketMatches(abstractFD, .abstract(name: abstractName)))
        XCTAssertFalse(socketMatches(abstractFD, .abstract(name: abstractName + "x")))
        XCTAssertFalse(socketMatches(abstractFD, .unix(path: path)))
        unlink(path)
        XCTAssertFalse(socketMatches(unixFD, .unix(path: path)), "nobody can reach a socket whose file is gone")
    }

    func testTCP6MatchesItsAddress() throws {
        let fd = try bindListenSocket(.tcp6(host: "::1", port: 0))
        defer { close(fd) }
        var sa = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = UInt16(bigEndian: sa.sin6_port)
        XCTAssertTrue(socketMatches(fd, .tcp6(host: "::1", port: port)))
        XCTAssertTrue(socketMatches(fd, .tcp6(host: "0:0::1", port: port)), "compared as addresses, not text")
        XCTAssertFalse(socketMatches(fd, .tcp4(host: "127.0.0.1", port: port)))
    }

    func testAFailureClosesWhatWasBoundAndSendsNothing() throws {
        let (busy, busyPort) = try listeningTCP()
        defer { close(busy) }
        let port = try freePort()
        XCTAssertThrowsError(try SocketSet.open([listen("a", .tcp4(host: "127.0.0.1", port: port)),
                                                 listen("b", .tcp4(host: "127.0.0.1", port: busyPort)),
                                                 fromSystemd("c", "nope")], passed: [])) { error in
            XCTAssertEqual("\(error)", """
                socket c: systemd passed no socket named "nope" (passed: none)
                socket b: bind 127.0.0.1:\(busyPort): Address already in use
                """)
        }
        XCTAssertTrue(notify.receive().isEmpty)
        let again = try bindListenSocket(.tcp4(host: "127.0.0.1", port: port))   // a's port is free again
        close(again)
    }

    func testWithoutNotifySocketItStillWorks() throws {
        notify = nil   // restores the test's own environment
        unsetenv("NOTIFY_SOCKET")
        var set = try SocketSet.open([listen("http", .tcp4(host: "127.0.0.1", port: 0))], passed: [])
        XCTAssertNotNil(set.fds["http"])
        set.closeAll()
    }

    // MARK: reload

    func testReloadKeepsUnchangedBindsNewDropsRemovedRebindsChanged() throws {
        let ports = try freePorts(4)
        let (p1, p2, p3, p4) = (ports[0], ports[1], ports[2], ports[3])
        let (activation, _) = try listeningTCP()
        var set = try SocketSet.open([listen("keep", .tcp4(host: "127.0.0.1", port: p1)),
                                      listen("drop", .tcp4(host: "127.0.0.1", port: p2)),
                                      listen("move", .tcp4(host: "127.0.0.1", port: p3)),
                                      fromSystemd("sd", "http")], passed: [(activation, "http")])
        defer { set.closeAll() }
        notify.receive().flatMap(\.fds).forEach { close($0) }
        let before = set.fds

        let changed = try set.reload(to: [listen("keep", .tcp4(host: "127.0.0.1", port: p1)),
                                          listen("move", .tcp4(host: "127.0.0.1", port: p4)),
                                          listen("new", .tcp4(host: "127.0.0.1", port: p2)),
                                          fromSystemd("sd", "http")])
        XCTAssertEqual(changed, ["move", "new"])
        XCTAssertEqual(set.fds["keep"], before["keep"])
        XCTAssertEqual(set.fds["sd"], activation)
        XCTAssertEqual(set.fds["new"], before["drop"], "a new socket on a dropped socket's address keeps that socket")
        XCTAssertNotEqual(set.fds["move"], before["move"])
        XCTAssertFalse(isOpen(before["move"]!))
        let messages = notify.receive().map(\.text)
        // Removals first (FDSTOREREMOVE goes by name), then the stores.
        let removals = messages.prefix { $0.hasPrefix("FDSTOREREMOVE=1") }
        XCTAssertEqual(Set(removals), ["FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/drop",
                                       "FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/move"], "\(messages)")
        XCTAssertEqual(Set(messages.dropFirst(removals.count)), ["FDSTORE=1\nFDNAME=ringmasterd/bound/move",
                                                                 "FDSTORE=1\nFDNAME=ringmasterd/bound/new"], "\(messages)")

        // Everything dropped: closed and removed from the store.
        let moved = set.fds["move"]!
        _ = try set.reload(to: [fromSystemd("sd", "http")])
        XCTAssertFalse(isOpen(moved))
        XCTAssertEqual(Set(notify.receive().map(\.text)), ["FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/keep",
                                                           "FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/move",
                                                           "FDSTOREREMOVE=1\nFDNAME=ringmasterd/bound/new"])
    }

    func testReloadStoresWhatItBindsWithItsFD() throws {
        var set = try SocketSet.open([], passed: [])
        defer { set.closeAll() }
        let changed = try set.reload(to: [listen("new", .tcp4(host: "127.0.0.1", port: 0))])
        XCTAssertEqual(changed, ["new"])
        let messages = notify.receive()
        XCTAssertEqual(messages.map(\.text), ["FDSTORE=1\nFDNAME=ringmasterd/bound/new"])
        XCTAssertEqual(messages.first?.fds.count, 1)
        if let sent = messages.first?.fds.first, let fd = set.fds["new"] {
            XCTAssertTrue(sameSocket(sent, fd))
        }
        messages.flatMap(\.fds).forEach { close($0) }
    }

    func testFailedReloadChangesNothing() throws {
        let (busy, busyPort) = try listeningTCP()
        defer { close(busy) }
        let ports = try freePorts(2)
        let (p1, p2) = (ports[0], ports[1])
        var set = try SocketSet.open([listen("a", .tcp4(host: "127.0.0.1", port: p1))], passed: [])
        defer { set.closeAll() }
        notify.receive().flatMap(\.fds).forEach { close($0) }
        let before = set.sockets
        XCTAssertThrowsError(try set.reload(to: [listen("b", .tcp4(host: "127.0.0.1", port: p2)),
                                                 listen("c", .tcp4(host: "127.0.0.1", port: busyPort)),
                                                 fromSystemd("d", "later")])) { error in
            XCTAssertEqual("\(error)", """
                socket c: bind 127.0.0.1:\(busyPort): Address already in use
                socket d: systemd passes its sockets only when ringmasterd starts; restart ringmaster to take "later"
                """)
        }
        XCTAssertEqual(set.sockets, before)
        XCTAssertTrue(isOpen(before["a"]!.fd))
        XCTAssertTrue(notify.receive().isEmpty)
        let again = try bindListenSocket(.tcp4(host: "127.0.0.1", port: p2))   // b was closed again
        close(again)
    }
}
