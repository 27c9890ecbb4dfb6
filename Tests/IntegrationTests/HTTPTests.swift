// A real HTTP client against contrib/examples/httpworker.py: several instances serving one
// shared listening socket, each reporting readiness itself (ready = "notify").
import Foundation
import Glibc
import XCTest

final class HTTPTests: IntegrationTestCase {
    private func startWorkers(_ svc: String, port: UInt16, instances: Int = 3, mode: Daemon.Mode = .console) throws -> Daemon {
        try startDaemon("""
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            \(httpWorkers(svc, instances: instances))
            """, mode: mode)
    }

    func testSeveralInstancesServeTheSharedSocket() throws {
        let web = service("web")
        let port = try freePort()
        let daemon = try startWorkers(web, port: port)
        let instances = try requireInstances(3, of: web, daemon: daemon)
        let pids = Set(instances.values.map { String($0.pid) })
        // Readiness: the service goes running only once every worker sent READY=1.
        try requireLog("\(web): starting -> running", daemon: daemon)

        // Each worker handles one connection at a time: while three connections are open and
        // unanswered, each is held by a different worker, so the replies come from all three.
        let held = try (0..<3).map { _ in try HTTPConnection(port: port) }
        try require("the three connections accepted") { try acceptQueueLength(port: port) == 0 }
        var servedBy: [String: String] = [:]   // pid → instance
        for connection in held {
            let reply = try connection.get("/held")
            XCTAssertEqual(reply.status, 200)
            let kv = keyValues(reply.body)
            servedBy[kv["pid"] ?? "?"] = kv["instance"]
            XCTAssertEqual(kv["service"], web)
        }
        XCTAssertEqual(Set(servedBy.keys), pids, "three held connections must be served by the three workers")
        XCTAssertEqual(Set(servedBy.values), ["0", "1", "2"])

        // And plain sequential requests all succeed, each from one of the workers.
        for i in 0..<30 {
            let reply = try httpGet(port: port, "/seq/\(i)")
            XCTAssertEqual(reply.status, 200)
            XCTAssertTrue(pids.contains(keyValues(reply.body)["pid"] ?? ""), "reply from an unknown process: \(reply.body)")
        }
        // One log line per request, with the instance's prefix.
        try requireLog(" | 127.0.0.1 \"GET /seq/29 HTTP/1.0\" 200", daemon: daemon)
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// The socket belongs to the daemon: a worker's death refuses no connection.
    func testSocketStaysOpenWhileAWorkerIsReplaced() throws {
        let web = service("web")
        let port = try freePort()
        let daemon = try startWorkers(web, port: port, instances: 1)
        let first = try requireInstances(1, of: web, daemon: daemon)[0]!
        try require("a reply from \(web).0") { (try? httpGet(port: port))?.status == 200 }
        kill(first.pid, SIGKILL)
        // Connections made while no worker runs wait in the backlog and are served by the next one.
        let reply = try httpGet(port: port, "/after-kill")
        XCTAssertEqual(reply.status, 200)
        XCTAssertNotEqual(keyValues(reply.body)["pid"], String(first.pid))
        XCTAssertEqual(keyValues(reply.body)["instance"], "0")
    }
}
