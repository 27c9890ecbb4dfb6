// N instances, and what each one is given: environment, working directory, the shared
// socket at fd 3 with LISTEN_*, and a notify socket of its own.
import Foundation
import Glibc
import XCTest

final class InstanceTests: IntegrationTestCase {
    func testInstancesGetTheirEnvironmentSocketAndNotifySocket() throws {
        let web = service("web")
        let port = try freePort()
        let workdir = dir + "/work dir"
        try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        // The daemon's own NOTIFY_SOCKET (as systemd would give it) must not reach the children.
        let daemonNotify = "@ringmaster-it-\(prefix)-daemon-notify"
        let daemon = try startDaemon("""
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            [services.\(web)]
            command = ["/bin/sh", "-c", "sleep 1000 & wait", "sh", "{socket.http.fd}"]
            instances = 3
            sockets = ["http"]
            environment = { APP_ENV = "it test", EMPTY = "" }
            working-directory = \(TOML.string(workdir))
            """, environment: ["NOTIFY_SOCKET": daemonNotify, "WATCHDOG_USEC": "60000000"])

        let instances = try requireInstances(3, of: web, daemon: daemon)
        var notifySockets = Set<String>()
        var socketInodes = Set<String>()
        for (i, p) in instances.sorted(by: { $0.key < $1.key }) {
            let env = p.environment
            XCTAssertEqual(env["RINGMASTER_SERVICE"], web)
            XCTAssertEqual(env["RINGMASTER_INSTANCE"], String(i))
            XCTAssertEqual(env["APP_ENV"], "it test")
            XCTAssertEqual(env["EMPTY"], "")
            XCTAssertEqual(env["LISTEN_FDS"], "1")
            XCTAssertEqual(env["LISTEN_FDNAMES"], "http")
            XCTAssertEqual(env["LISTEN_PID"], String(p.pid), "LISTEN_PID must be the instance's own pid")
            XCTAssertNil(env["WATCHDOG_USEC"], "the daemon's WATCHDOG_USEC leaked to \(web).\(i)")
            let notify = try XCTUnwrap(env["NOTIFY_SOCKET"], "\(web).\(i) has no NOTIFY_SOCKET")
            XCTAssertNotEqual(notify, daemonNotify, "the daemon's own NOTIFY_SOCKET leaked to \(web).\(i)")
            notifySockets.insert(notify)
            XCTAssertEqual(p.workingDirectory, workdir)
            XCTAssertEqual(Array(p.arguments.suffix(2)), ["sh", "3"], "{socket.http.fd} substituted: \(p.arguments)")
            let fd3 = try XCTUnwrap(p.fd(3), "\(web).\(i) has no fd 3")
            XCTAssertTrue(fd3.hasPrefix("socket:"), "fd 3 of \(web).\(i) is \(fd3)")
            socketInodes.insert(fd3)
            XCTAssertNil(p.fd(4), "\(web).\(i) has an fd 4 it was not given: \(p.fd(4) ?? "")")
            XCTAssertEqual(p.fd(0), "/dev/null", "stdin of \(web).\(i)")
        }
        XCTAssertEqual(notifySockets.count, 1, "one notify socket, the daemon's, for every instance (attributed by sender): \(notifySockets)")
        XCTAssertEqual(socketInodes.count, 1, "every instance must share the one listening socket: \(socketInodes)")
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// Children start in the directory of the config file when no working-directory is set.
    func testDefaultWorkingDirectoryIsTheConfigDirectory() throws {
        let svc = service("pwd")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["sleep", "1000"]
            """)
        let instances = try requireInstances(1, of: svc, daemon: daemon)
        XCTAssertEqual(instances[0]?.workingDirectory, dir)
        XCTAssertEqual(instances[0]?.environment["LISTEN_FDS"], nil, "no sockets configured, no LISTEN_FDS")
    }
}
