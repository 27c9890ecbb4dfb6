// `systemd-socket-activate` as ringmasterd's parent: the same LISTEN_FDS/LISTEN_FDNAMES
// protocol as a .socket unit, without systemd --user in between.
import Foundation
import Glibc
import XCTest

final class SystemdSocketActivateTests: IntegrationTestCase {
    private var activator: Process?
    private var activatorOutput: FileHandle?

    override func tearDownWithError() throws {
        if let p = activator, p.isRunning {
            kill(p.processIdentifier, SIGTERM)
            if !waitUntil(timeout: 20, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        activator = nil
        try? activatorOutput?.close()
        activatorOutput = nil
        try super.tearDownWithError()
    }

    /// Runs `systemd-socket-activate -l 127.0.0.1:PORT --fdname=FDNAME ringmasterd --config …`.
    private func activate(port: UInt16, fdname: String, config toml: String) throws -> (Process, String) {
        let config = try writeConfig(toml)
        let stderrPath = dir + "/activate.stderr"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        p.arguments = ["-l", "127.0.0.1:\(port)", "--fdname=\(fdname)",
                       try Binaries.ringmasterd(), "--config", config, "--log-target", "console"]
        p.environment = Daemon.environment()
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardInput = FileHandle.nullDevice
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        p.standardOutput = err
        p.standardError = err
        activatorOutput = err
        try p.run()
        activator = p
        // It listens before it execs anything.
        try require("systemd-socket-activate listening on \(port)") { (try? acceptQueueLength(port: port)) != nil }
        return (p, stderrPath)
    }

    func testSystemdSocketActivateAsTheParent() throws {
        let web = service("web")
        let port = try freePort()
        let (p, stderrPath) = try activate(port: port, fdname: "http", config: """
            [sockets.http]
            systemd = "http"

            \(httpWorkers(web))
            """)
        // The first connection makes it exec ringmasterd (same pid), which passes the socket on.
        let reply = try HTTPConnection(port: port, timeout: 30).get("/first")
        XCTAssertEqual(reply.status, 200, contents(stderrPath) ?? "")
        XCTAssertEqual(keyValues(reply.body)["service"], web)
        let daemon = p.processIdentifier
        let workers = try requireInstances(2, of: web, parent: daemon).values
        for w in workers {
            XCTAssertEqual(w.environment["LISTEN_FDNAMES"], "http")
            XCTAssertEqual(w.environment["LISTEN_FDS"], "1")
        }
        XCTAssertTrue(Processes.read(daemon)?.arguments.first?.hasSuffix("ringmasterd") == true)
        kill(daemon, SIGTERM)
        XCTAssertTrue(waitUntil(timeout: 20) { !p.isRunning })
        XCTAssertEqual(p.terminationStatus, 0, contents(stderrPath) ?? "")
    }

    func testAnFDSystemdDidNotPassIsAClearError() throws {
        let web = service("web")
        let port = try freePort()
        let (p, stderrPath) = try activate(port: port, fdname: "other", config: """
            [sockets.http]
            systemd = "http"

            [services.\(web)]
            command = ["sleep", "1000"]
            sockets = ["http"]
            """)
        _ = try? HTTPConnection(port: port, timeout: 2)   // triggers the exec
        XCTAssertTrue(waitUntil(timeout: 20) { !p.isRunning }, "ringmasterd must refuse to start")
        XCTAssertNotEqual(p.terminationStatus, 0)
        let said = contents(stderrPath) ?? ""
        XCTAssertTrue(said.contains("socket http: systemd passed no socket named \"http\""), said)
        XCTAssertTrue(said.contains("(passed: \"other\")") || said.contains("(passed: other)"), said)
    }
}
