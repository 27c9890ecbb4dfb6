// `{instance}` and `{instance + N}` with a real daemon: each instance's environment
// (/proc/PID/environ), argv (/proc/PID/cmdline) and working directory (/proc/PID/cwd).
import Foundation
import Glibc
import XCTest

final class PlaceholderIntegrationTests: IntegrationTestCase {
    func testEachInstanceGetsItsOwnNumbers() throws {
        let web = service("web")
        for i in 0..<3 { try FileManager.default.createDirectory(atPath: dir + "/w\(i)", withIntermediateDirectories: true) }
        let daemon = try startDaemon("""
            [services.\(web)]
            command = ["sleep", "{instance + 1000}"]
            instances = 3
            environment = { PORT = "{instance + 8000}", PREVIOUS = "{instance - 1}", NAME = "web-{instance}" }
            working-directory = "w{instance}"
            """)
        let found = try requireInstances(3, of: web, daemon: daemon)
        for i in 0..<3 {
            let p = try XCTUnwrap(found[i])
            XCTAssertEqual(p.environment["PORT"], String(8000 + i))
            XCTAssertEqual(p.environment["PREVIOUS"], String(i - 1))
            XCTAssertEqual(p.environment["NAME"], "web-\(i)")
            XCTAssertEqual(p.arguments, ["sleep", String(1000 + i)])
            XCTAssertEqual(p.workingDirectory, dir + "/w\(i)")
        }
    }

    func testRingctlCheckRejectsABadPlaceholderAtItsColumn() throws {
        let path = try writeConfig("""
            [services.web]
            command = ["app", "--port", "{instance * 2}"]
            environment = { PORT = "{instance+8000}", BAD = "x{instance + y}" }
            """, name: "check.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", path])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix(path) }, [
            "\(path):2:30: bad placeholder \"{instance * 2}\": expected {instance} or {instance + N} with N a whole number",
            "\(path):3:51: bad placeholder \"{instance + y}\": expected {instance} or {instance + N} with N a whole number",
        ])
    }
}
