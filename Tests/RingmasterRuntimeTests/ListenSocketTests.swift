import Foundation
import Glibc
import RingmasterCore
import RingmasterRuntime
import XCTest

final class ListenSocketTests: XCTestCase {
    /// The port the kernel picked for a socket bound to port 0.
    private func port(of fd: Int32) -> UInt16 {
        // sockaddr_in and sockaddr_in6 both keep the port right after the family.
        var raw = [UInt8](repeating: 0, count: MemoryLayout<sockaddr_in6>.size)
        var length = socklen_t(raw.count)
        let r = raw.withUnsafeMutableBytes { buffer in
            getsockname(fd, buffer.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        XCTAssertEqual(r, 0)
        return UInt16(raw[2]) << 8 | UInt16(raw[3])
    }

    private func isListening(_ fd: Int32) -> Bool {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0 && value == 1
    }

    private func isCloexec(_ fd: Int32) -> Bool {
        fcntl(fd, F_GETFD) & FD_CLOEXEC != 0
    }

    func testTCP4AndAddressAlreadyInUse() throws {
        let fd = try bindListenSocket(.tcp4(host: "127.0.0.1", port: 0))
        defer { close(fd) }
        XCTAssertTrue(isListening(fd))
        XCTAssertTrue(isCloexec(fd))
        let p = port(of: fd)
        XCTAssertNotEqual(p, 0)

        XCTAssertThrowsError(try bindListenSocket(.tcp4(host: "127.0.0.1", port: p))) { error in
            XCTAssertEqual("\(error)", "bind 127.0.0.1:\(p): Address already in use")
        }
    }

    func testTCP6IsV6Only() throws {
        let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        try XCTSkipIf(probe < 0, "no IPv6 here")
        close(probe)
        let bound = Result { () throws(SocketError) -> Int32 in try bindListenSocket(.tcp6(host: "::1", port: 0)) }
        if case let .failure(error) = bound, error.errno == EADDRNOTAVAIL { throw XCTSkip("no ::1 here") }
        let fd = try bound.get()
        defer { close(fd) }
        XCTAssertTrue(isListening(fd))
        var v6only: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        XCTAssertEqual(getsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, &length), 0)
        XCTAssertEqual(v6only, 1)
        // The same port on IPv4 is still free thanks to V6ONLY.
        let v4 = try bindListenSocket(.tcp4(host: "127.0.0.1", port: port(of: fd)))
        close(v4)
    }

    func testBadHostIsAnError() {
        XCTAssertThrowsError(try bindListenSocket(.tcp4(host: "localhost", port: 1))) { error in
            XCTAssertEqual("\(error)", "bind localhost:1: Invalid argument")
        }
    }

    func testUnixPathReplacesAStaleSocketButNotALiveOne() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/app.sock"

        let first = try bindListenSocket(.unix(path: path))
        XCTAssertTrue(isListening(first))
        // Live: left alone.
        XCTAssertThrowsError(try bindListenSocket(.unix(path: path))) { error in
            XCTAssertEqual("\(error)", "bind \(path): Address already in use")
        }
        close(first)
        // Stale (file still there, nobody listening): replaced.
        XCTAssertEqual(access(path, F_OK), 0)
        let second = try bindListenSocket(.unix(path: path))
        XCTAssertTrue(isListening(second))
        close(second)
    }

    func testUnixPathThatIsARegularFileIsNotRemoved() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/not-a-socket"
        _ = FileManager.default.createFile(atPath: path, contents: Data("keep".utf8))
        XCTAssertThrowsError(try bindListenSocket(.unix(path: path))) { error in
            XCTAssertEqual("\(error)", "bind \(path): Address already in use")
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "keep")
    }

    func testAbstractAndItsClash() throws {
        let name = "ringmaster-test/\(getpid())/listen"
        let fd = try bindListenSocket(.abstract(name: name))
        defer { close(fd) }
        XCTAssertTrue(isListening(fd))
        XCTAssertThrowsError(try bindListenSocket(.abstract(name: name))) { error in
            XCTAssertEqual("\(error)", "bind @\(name): Address already in use")
        }
    }
}
