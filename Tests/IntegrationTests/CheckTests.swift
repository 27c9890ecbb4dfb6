// A bad config is rejected whole, every problem as `file:line:column: message`: by
// `ringctl check` offline and by ringmasterd at start.
import Foundation
import Glibc
import XCTest

final class CheckTests: IntegrationTestCase {
    /// Lines (1-based) with one problem each; the expected column, where it is unambiguous.
    private let badConfig = """
        [sockets.http]
        listen = "127.0.0.1:8080"

        [services.web]
        command = ["python3", "app.py"]
        colour = "red"
        restart-delay = "10 parsecs"
        sockets = ["nope"]
        stop-signal = "TREM"
        after = ["ghost"]
        instances = "three"
        """
    private let badLines = [6: 1, 7: nil, 8: nil, 9: nil, 10: nil, 11: nil] as [Int: Int?]

    private let goodConfig = """
        [sockets.http]
        listen = "127.0.0.1:8080"

        [services.web]
        command = ["python3", "app.py"]
        sockets = ["http"]
        instances = 2
        restart-delay = "250ms"
        start-limit = { count = 3, interval = "1min" }

        [services.db]
        command = "exec sleep 1000"
        shell = true
        ready = "notify"
        """

    /// Checks that `output` names every bad line of `file` as file:line:column: message.
    private func assertDiagnostics(_ output: String, file: String, lines expected: [Int: Int?],
                                   sourceLine: UInt = #line) {
        var seen: [Int: Int] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix(file + ":") {
            let parts = line.dropFirst(file.count + 1).split(separator: ":", maxSplits: 2)
            guard parts.count == 3, let l = Int(parts[0]), let c = Int(parts[1]), c >= 1,
                  parts[2].hasPrefix(" "), parts[2].count > 1 else {
                XCTFail("not file:line:column: message: \(line)", line: sourceLine)
                continue
            }
            seen[l] = c
        }
        XCTAssertEqual(Set(seen.keys), Set(expected.keys), "lines named:\n\(output)", line: sourceLine)
        for (l, column) in expected {
            if let column { XCTAssertEqual(seen[l], column, "column on line \(l):\n\(output)", line: sourceLine) }
        }
    }

    func testRingctlCheckNamesEveryBadLine() throws {
        let path = try writeConfig(badConfig, name: "bad.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", path])
        XCTAssertEqual(r.status, 1, "ringctl check on a bad file: \(r.stdout)\(r.stderr)")
        assertDiagnostics(r.stderr + r.stdout, file: path, lines: badLines)
    }

    func testRingctlCheckFindsACycle() throws {
        let path = try writeConfig("""
            [services.a]
            command = ["true"]
            after = ["b"]

            [services.b]
            command = ["true"]
            after = ["a"]
            """, name: "cycle.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("\(path):3:") || r.stderr.contains("\(path):7:"), r.stderr)
        XCTAssertTrue(r.stderr.lowercased().contains("cycle"), r.stderr)
    }

    func testRingctlCheckAcceptsAGoodFile() throws {
        let path = try writeConfig(goodConfig, name: "good.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        XCTAssertEqual(r.stdout, "\(path): OK (2 services, 1 socket)\n")
    }

    func testRingctlCheckAcceptsTheDemo() throws {
        let r = try runCommand([try Binaries.ringctl(), "check", Binaries.examples + "/demo.toml"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testDaemonRefusesABadConfig() throws {
        let daemon = try startDaemon(badConfig)
        let status = daemon.waitForExit(timeout: 10)
        XCTAssertEqual(status, 78, "ringmasterd with a bad config exits EX_CONFIG (RestartPreventExitStatus=78 in the unit): \(daemon.stderr)")
        assertDiagnostics(daemon.stderr, file: daemon.configPath, lines: badLines)
    }
}
