// contrib/examples/stack.toml, the second example stack (a oneshot migration, a web tier on
// one socket with a pre-start, workers with an env file and per-instance ports), checked by
// `ringctl check` and run for real: a copy of the example directory with free ports.
import Foundation
import Glibc
import XCTest

final class ExampleStackTests: DBusTestCase {
    func testRingctlCheckAcceptsTheExampleStack() throws {
        let r = try runCommand([try Binaries.ringctl(), "check", Binaries.examples + "/stack.toml"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, Binaries.examples + "/stack.toml: OK (3 services, 1 socket)\n")
    }

    func testTheExampleStackRuns() throws {
        let copy = dir  // startDaemon writes the config here: relative paths resolve against it
        try FileManager.default.createDirectory(atPath: copy + "/stack", withIntermediateDirectories: true)
        for file in ["stack.env", "httpworker.py", "stack/migrate.py", "stack/check_schema.py", "stack/worker.py"] {
            try FileManager.default.copyItem(atPath: Binaries.examples + "/" + file, toPath: copy + "/" + file)
        }
        let webPort = try freePort(), workerPort = try freePort()
        var toml = try String(contentsOfFile: Binaries.examples + "/stack.toml", encoding: .utf8)
        XCTAssertTrue(toml.contains("127.0.0.1:8090") && toml.contains("{instance + 8100}"))
        toml = toml.replacingOccurrences(of: "127.0.0.1:8090", with: "127.0.0.1:\(webPort)")
            .replacingOccurrences(of: "{instance + 8100}", with: "{instance + \(workerPort)}")
        // the services' names carry the test's prefix (the harness looks for leftovers by it)
        let names = ["migrate", "web", "worker"]
        for name in names {
            toml = toml.replacingOccurrences(of: "[services.\(name)]", with: "[services.\(service(name))]")
                .replacingOccurrences(of: "\"\(name)\"]", with: "\"\(service(name))\"]")
        }
        try startBusDaemon(toml)
        try requireService(service("web"), state: "running", running: 3, instances: 3, timeout: 30)
        try requireService(service("worker"), state: "running", running: 2, instances: 2, timeout: 30)
        XCTAssertEqual(try state(service("migrate")), "exited")
        XCTAssertEqual(try number(service("migrate"), "LastExitStatus"), 0)
        XCTAssertTrue(try httpGet(port: webPort).body.contains("service=\(service("web"))"))
        XCTAssertEqual(try httpGet(port: workerPort, "/healthz").body.trimmingCharacters(in: .whitespacesAndNewlines), "worker-0 ok")
        XCTAssertEqual(try httpGet(port: workerPort + 1, "/healthz").body.trimmingCharacters(in: .whitespacesAndNewlines), "worker-1 ok")
        XCTAssertTrue(FileManager.default.fileExists(atPath: copy + "/data/app.db"), "the migration ran in the config's directory")
    }
}
