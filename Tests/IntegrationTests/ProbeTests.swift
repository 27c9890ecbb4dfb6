// Probes for real: HTTP servers that stop answering (SIGSTOP), a dependency that opens its
// port late behind `ready = "probe"`, exec probes that fail and hang, and bad probe tables in
// `ringctl check`. Every wait is on an event (a pid, a file, the daemon's log, a property)
// with a deadline; the timing bound is measured, not slept.
import Foundation
import Glibc
import XCTest

final class ProbeTests: DBusTestCase {
    /// A one-file HTTP/1.1 server on 127.0.0.1:PORT (argv[1]) answering 200 to anything (503
    /// while a file `down` exists); it writes `listening.PORT` (ns timestamp) once it accepts,
    /// and `hits.PORT` (requests answered so far) after each request.
    private func writeServer() throws {
        try """
            import os, socket, sys, time
            port = int(sys.argv[1])
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            open("listening.%d" % port, "w").write(str(time.time_ns()))
            hits = 0
            while True:
                c, _ = s.accept()
                try:
                    c.recv(4096)
                    status = b"503 Service Unavailable" if os.path.exists("down") else b"200 OK"
                    c.sendall(b"HTTP/1.1 " + status + b"\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
                except OSError:
                    pass
                c.close()
                hits += 1
                open("hits.%d" % port, "w").write(str(hits))
            """.write(toFile: dir + "/server.py", atomically: true, encoding: .utf8)
        // The same with keep-alive, as real app servers have (Python's ThreadingHTTPServer,
        // HTTP/1.1): it writes `counts.PORT` = "connections requests" after each of either.
        try """
            import http.server, os, sys, threading, time
            port = int(sys.argv[1])
            lock = threading.Lock()
            counts = [0, 0]
            def save():
                open("counts.%d.tmp" % port, "w").write("%d %d" % tuple(counts))
                os.replace("counts.%d.tmp" % port, "counts.%d" % port)
            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def setup(self):
                    super().setup()
                    with lock:
                        counts[0] += 1
                        save()
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                    with lock:
                        counts[1] += 1
                        save()
                def log_message(self, *args):
                    pass
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
            open("listening.%d" % port, "w").write(str(time.time_ns()))
            server.serve_forever()
            """.write(toFile: dir + "/keepalive.py", atomically: true, encoding: .utf8)
    }

    /// (connections, requests) counted by keepalive.py on `port`.
    private func counts(_ port: Int) -> (connections: Int, requests: Int)? {
        guard let text = try? String(contentsOfFile: dir + "/counts.\(port)", encoding: .utf8) else { return nil }
        let n = text.split(separator: " ").compactMap { Int($0) }
        return n.count == 2 ? (n[0], n[1]) : nil
    }

    /// A base port with `count` free ports after it (bound and released to check).
    private func freePorts(_ count: Int) throws -> UInt16 {
        for _ in 0..<50 {
            let base = UInt16.random(in: 20_000...60_000)
            if (0..<count).allSatisfy({ portIsFree(base + UInt16($0)) }) { return base }
        }
        throw HarnessError("no \(count) free ports in a row")
    }

    private func portIsFree(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    private func timestamp(_ file: String) -> UInt64? {
        (try? String(contentsOfFile: dir + "/" + file, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Three instances of server.py, each on its own port (base + instance), with `liveness`
    /// (PORT in it is the base port) and `service` lines in their tables; once each listens.
    private func startServers(service extra: String = "", server: String = "server.py", liveness: String) throws
        -> (web: String, base: UInt16, daemon: Daemon, before: [Int: ProcessInfoEntry]) {
        try writeServer()
        let base = try freePorts(3)
        let web = service("web")
        let daemon = try startDaemon("""
            [services.\(web)]
            command = ["python3", \(TOML.string(server)), "{instance + \(base)}"]
            instances = 3
            \(extra)
            [services.\(web).liveness]
            \(liveness.replacingOccurrences(of: "PORT", with: String(base)))
            """)
        let before = try requireInstances(3, of: web, daemon: daemon)
        for i in 0..<3 { try require("instance \(i) listening") { self.timestamp("listening.\(Int(base) + i)") != nil } }
        return (web, base, daemon, before)
    }

    /// Instance 1 of 3 is SIGSTOPped: its HTTP liveness probe times out `failures` times and
    /// it is replaced within interval × failures + timeout + 1 s, reason `liveness`, while
    /// instances 0 and 2 keep their processes.
    func testStoppedInstanceIsReplacedSiblingsKeepTheirPids() throws {
        try stoppedInstanceIsReplaced(server: "server.py")
    }

    /// The same with a keep-alive server: the probe's kept connection does not hide the stop.
    func testStoppedKeepAliveInstanceIsReplacedSiblingsKeepTheirPids() throws {
        try stoppedInstanceIsReplaced(server: "keepalive.py")
    }

    private func stoppedInstanceIsReplaced(server: String) throws {
        let (web, base, daemon, before) = try startServers(server: server, liveness: """
            http = "http://127.0.0.1:{instance + PORT}/healthz"
            interval = "1s"
            timeout = "500ms"
            initial-delay = "500ms"
            failures = 2
            """)
        // Every instance has answered a probe: its failure count (a refused connect before it
        // listened) is back to 0, so the stopped one needs `failures` timeouts of its own.
        for i in 0..<3 {
            try require("instance \(i) probed") {
                server == "server.py" ? self.timestamp("hits.\(Int(base) + i)").map { $0 >= 1 } == true
                                      : (self.counts(Int(base) + i)?.requests ?? 0) >= 1
            }
        }
        let stopped = try XCTUnwrap(before[1]).pid
        kill(stopped, SIGSTOP)
        let t0 = monotonicNanoseconds()
        let bound = 1.0 * 2 + 0.5 + 1
        let replacement = try require("web.1 replaced", timeout: bound + 5, poll: 0.01) { () -> Int32? in
            guard let p = self.instances(of: web, daemon: daemon)[1], p.pid != stopped else { return nil }
            return p.pid
        }
        let took = Double(monotonicNanoseconds() - t0) / 1e9
        print("SIGSTOP -> replacement: \(took) s (bound \(bound) s)")
        XCTAssertLessThanOrEqual(took, bound, "replaced after \(took) s\n\(daemon.log())")
        XCTAssertNotEqual(replacement, stopped)
        let after = instances(of: web, daemon: daemon)
        XCTAssertEqual(after[0]?.pid, before[0]?.pid, "web.0 kept its pid")
        XCTAssertEqual(after[2]?.pid, before[2]?.pid, "web.2 kept its pid")
        try requireLog("\(web).1 failed its liveness probe 2 times in a row (timed out after 500ms): restarting it", daemon: daemon)
        XCTAssertFalse(daemon.log().contains("\(web).0 failed its liveness"), daemon.log())
        XCTAssertFalse(daemon.log().contains("\(web).2 failed its liveness"), daemon.log())
        XCTAssertEqual(try property(web, "LastExitReason") as? String, "liveness")
        // The stopped process was continued and ended by its stop signal, not left stopped.
        try require("the stopped process is gone") { kill(stopped, 0) != 0 }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// (In these two, `failures = 100` lets Python start: the probes refused before it listens
    /// do not restart it; any failure once it has answered shows in the log and fails the test.)
    ///
    /// A keep-alive server: the probes reuse their connection — a fresh one every 10th probe
    /// (the server counts connections and requests) — and every probe passes.
    func testKeepAliveServerConnectionIsReused() throws {
        let (web, base, daemon, before) = try startServers(server: "keepalive.py", liveness: """
            http = "http://127.0.0.1:{instance + PORT}/healthz"
            interval = "100ms"
            failures = 100
            """)
        for i in 0..<3 { try require("instance \(i) probed") { (self.counts(Int(base) + i)?.requests ?? 0) >= 1 } }
        let failedBefore = daemon.log().components(separatedBy: "liveness probe failed").count
        for i in 0..<3 {
            try require("instance \(i) probed 31 times", timeout: 30, poll: 0.05) { (self.counts(Int(base) + i)?.requests ?? 0) >= 31 }
        }
        for i in 0..<3 {
            let c = try XCTUnwrap(counts(Int(base) + i))
            print("web.\(i): \(c.requests) requests on \(c.connections) connections")
            // 10 probes a connection: ⌈requests / 10⌉, give or take the one in flight
            XCTAssertLessThanOrEqual(c.connections, c.requests / 10 + 2, "web.\(i): \(c)")
            XCTAssertGreaterThanOrEqual(c.connections, c.requests / 10, "web.\(i): a fresh connection every 10th probe: \(c)")
        }
        XCTAssertEqual(daemon.log().components(separatedBy: "liveness probe failed").count, failedBefore, daemon.log())
        let after = instances(of: web, daemon: daemon)
        for i in 0..<3 { XCTAssertEqual(after[i]?.pid, before[i]?.pid) }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// A server that closes after each response (`Connection: close`) gets a connection per
    /// probe, and every probe passes.
    func testServerClosingEachConnectionPassesEveryProbe() throws {
        let (web, base, daemon, before) = try startServers(liveness: """
            http = "http://127.0.0.1:{instance + PORT}/healthz"
            interval = "100ms"
            failures = 100
            """)
        for i in 0..<3 { try require("instance \(i) probed") { self.timestamp("hits.\(Int(base) + i)").map { $0 >= 1 } == true } }
        let failedBefore = daemon.log().components(separatedBy: "liveness probe failed").count
        for i in 0..<3 {
            try require("instance \(i) probed 21 times", timeout: 30, poll: 0.05) { self.timestamp("hits.\(Int(base) + i)").map { $0 >= 21 } == true }
        }
        XCTAssertEqual(daemon.log().components(separatedBy: "liveness probe failed").count, failedBefore, daemon.log())
        let after = instances(of: web, daemon: daemon)
        for i in 0..<3 { XCTAssertEqual(after[i]?.pid, before[i]?.pid) }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// Every instance fails at once (the file `down`: all answer 503, as when their database
    /// is gone): one instance is restarted — again and again, its replacement failing too —
    /// while the two others keep their processes; when the cause is gone, all pass again.
    func testWhenAllFailOneIsRestartedAtATime() throws {
        let (web, _, daemon, before) = try startServers(service: "start-limit = { count = 100, interval = \"10s\" }", liveness: """
            http = "http://127.0.0.1:{instance + PORT}/"
            interval = "300ms"
            timeout = "200ms"
            initial-delay = "2s"
            failures = 2
            """)
        _ = FileManager.default.createFile(atPath: dir + "/down", contents: nil)
        // Two restarts of the same instance, the two others held.
        func restarts(_ log: String) -> [String] {
            log.split(separator: "\n").filter { $0.contains("failed its liveness probe 2 times in a row") && $0.hasSuffix(": restarting it") }.map(String.init)
        }
        try require("two liveness restarts", timeout: 30, poll: 0.05) { restarts(daemon.log()).count >= 2 }
        let log = daemon.log()
        let restarted = (0..<3).filter { i in restarts(log).contains { $0.contains("\(web).\(i) failed") } }
        XCTAssertEqual(restarted.count, 1, "more than one instance restarted for liveness at once:\n\(log)")
        let others = (0..<3).filter { !restarted.contains($0) }
        for i in others {
            XCTAssertTrue(log.contains("\(web).\(i) failed its liveness probe 2 times in a row (HTTP 503); not restarted while instance \(restarted.first ?? -1)"), log)
        }
        let during = instances(of: web, daemon: daemon)
        for i in others { XCTAssertEqual(during[i]?.pid, before[i]?.pid, "web.\(i) was restarted while another was being replaced") }
        // The cause is gone: the replacement passes, the others pass and were never restarted.
        try FileManager.default.removeItem(atPath: dir + "/down")
        try requireLog("\(web).\(restarted.first ?? -1) passes its liveness probe again", daemon: daemon)
        let after = try requireInstances(3, of: web, daemon: daemon)
        for i in others { XCTAssertEqual(after[i]?.pid, before[i]?.pid) }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// `after` a `ready = "probe"` TCP service: the dependent starts only once the port accepts.
    func testDependentStartsOnceTheTCPReadinessProbePasses() throws {
        try writeServer()
        let port = try freePorts(1)
        let db = service("db"), app = service("app")
        let daemon = try startDaemon("""
            [services.\(app)]
            command = ["/bin/sh", "-c", "date +%s%N > app.started; exec sleep 1000"]
            after = [\(TOML.string(db))]

            [services.\(db)]
            command = ["/bin/sh", "-c", "touch db.waiting; while [ ! -e go ]; do sleep 0.02; done; exec python3 server.py \(port)"]
            ready = "probe"
            [services.\(db).readiness]
            tcp = "127.0.0.1:\(port)"
            interval = "100ms"
            """)
        try require("db waiting") { FileManager.default.fileExists(atPath: self.dir + "/db.waiting") }
        // The probe runs and fails while the port is closed; meanwhile app has no process.
        try requireLog("\(db).0 readiness probe failed: connect", daemon: daemon)
        try require("db starting with its process, on the bus", poll: 0.05) {
            (try? self.state(db)) == "starting" && (try? self.pids(db))?.count == 1
        }
        XCTAssertEqual(try pids(app), [], "app has a process before db's port accepts")
        XCTAssertEqual(instances(of: app, daemon: daemon).count, 0)
        XCTAssertNil(timestamp("app.started"))
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try require("app.started") { self.timestamp("app.started") != nil }
        let listening = try XCTUnwrap(timestamp("listening.\(port)"))
        let appStarted = try XCTUnwrap(timestamp("app.started"))
        XCTAssertLessThan(listening, appStarted, "app started \(Int64(listening) - Int64(appStarted)) ns before db listened")
        try requireLog("\(db): starting -> running", daemon: daemon)
        XCTAssertEqual(try state(db), "running")
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// An exec probe runs with the instance's environment and RINGMASTER_PID; a failing one
    /// restarts the instance, a hanging one is killed at its timeout (no process left).
    func testExecProbeFailsAndHangs() throws {
        let w = service("w")
        let daemon = try startDaemon("""
            [services.\(w)]
            command = ["sleep", "1000"]
            environment = { PROBE_FILE = "probe.{instance}" }
            [services.\(w).liveness]
            exec = ["/bin/sh", "-c", "echo \\"$RINGMASTER_PID $RINGMASTER_INSTANCE\\" > \\"$PROBE_FILE\\"; if [ -e hang ]; then exec sleep 30; fi; test ! -e fail"]
            interval = "300ms"
            timeout = "200ms"
            failures = 2
            """)
        // (An exec probe has the instance's environment, RINGMASTER_INSTANCE too: the
        // instance's own process is the `sleep 1000`.)
        func main() -> Int32? {
            Processes.of(service: w).first { $0.ppid == daemon.pid && $0.arguments == ["sleep", "1000"] }?.pid
        }
        let first = try require("w.0 running") { main() }
        try require("probe.0 names the instance's pid") {
            (try? String(contentsOfFile: self.dir + "/probe.0", encoding: .utf8)) == "\(first) 0\n"
        }
        // Failing (exit 1): replaced, reason liveness.
        _ = FileManager.default.createFile(atPath: dir + "/fail", contents: nil)
        let second = try require("w.0 replaced after a failing exec probe", timeout: 10) { () -> Int32? in
            guard let p = main(), p != first else { return nil }
            return p
        }
        try requireLog("\(w).0 failed its liveness probe 2 times in a row (/bin/sh exited with status 1): restarting it", daemon: daemon)
        XCTAssertEqual(try property(w, "LastExitReason") as? String, "liveness")
        try FileManager.default.removeItem(atPath: dir + "/fail")
        try require("probe.0 names the new pid") {
            (try? String(contentsOfFile: self.dir + "/probe.0", encoding: .utf8)) == "\(second) 0\n"
        }
        // Hanging: killed at its timeout, counted as a failure.
        _ = FileManager.default.createFile(atPath: dir + "/hang", contents: nil)
        let third = try require("w.0 replaced after hanging exec probes", timeout: 10) { () -> Int32? in
            guard let p = main(), p != second else { return nil }
            return p
        }
        try FileManager.default.removeItem(atPath: dir + "/hang")
        try requireLog("\(w).0 failed its liveness probe 2 times in a row (timed out after 200ms): restarting it", daemon: daemon)
        // The hung probes were killed: no `sleep 30` of this service is left.
        try require("no hung probe left") {
            Processes.of(service: w).allSatisfy { $0.arguments != ["sleep", "30"] }
        }
        XCTAssertNotEqual(third, second)
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    func testRingctlCheckNamesBadProbes() throws {
        let path = try writeConfig("""
            [services.web]
            command = ["python3", "app.py"]
            ready = "probe"
            [services.web.liveness]
            http = "http://example.com:{instance + 8000}/healthz"
            intervall = "1s"
            [services.db]
            command = ["postgres"]
            [services.db.readiness]
            tcp = "127.0.0.1:5432"
            exec = ["pg_isready"]
            """, name: "probes.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", path])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, [
            "\(path):3:9: ready = \"probe\" needs a [services.web.readiness] table (http, tcp or exec)",
            "\(path):5:8: bad http probe URL \"http://example.com:{instance + 8000}/healthz\": the host must be an IP address (127.0.0.1, [::1]) or localhost: names are not resolved",
            "\(path):6:1: unknown key \"intervall\" in [services.web.liveness]; did you mean \"interval\"?",
            "\(path):9:14: a readiness probe decides when an instance is ready: it needs ready = \"probe\" (not the default ready = \"started\")",
            "\(path):11:1: [services.db.readiness] has both tcp and exec (tcp is at 10:1); use one",
        ], r.stderr)
    }
}
