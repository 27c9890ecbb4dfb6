import XCTest
@testable import RingmasterCore

/// The probe tables: what each key accepts, the targets an instance's probe goes to, and each
/// mistake at its file:line:column.
final class ProbeConfigTests: XCTestCase {
    private func service(_ keys: String, file: StaticString = #filePath, line: UInt = #line) -> ServiceConfig? {
        acceptedService(keys, file: file, line: line)
    }

    private func errors(_ keys: String) -> [String] { serviceErrors(keys) { String(describing: $0) } }

    func testDefaultsAndEveryKey() throws {
        let s = try XCTUnwrap(service("""
            ready = "probe"
            [services.w.liveness]
            http = "http://127.0.0.1:{instance + 8000}/healthz"
            [services.w.readiness]
            tcp = "127.0.0.1:5432"
            interval = "2s"
            timeout = "500ms"
            initial-delay = "3s"
            failures = 5
            successes = 2
            """))
        var live = ProbeConfig(check: .http("http://127.0.0.1:{instance + 8000}/healthz"))
        live.interval = 10 * USec.perSecond; live.timeout = USec.perSecond; live.initialDelay = 0
        live.failures = 3; live.successes = 1
        XCTAssertEqual(s.liveness, live)
        XCTAssertEqual(s.ready, .probe)
        let r = try XCTUnwrap(s.readiness)
        XCTAssertEqual(r.check, .tcp("127.0.0.1:5432"))
        XCTAssertEqual([r.interval, r.timeout, r.initialDelay], [2_000_000, 500_000, 3_000_000])
        XCTAssertEqual([r.failures, r.successes], [5, 2])
        XCTAssertEqual(service("[services.w.liveness]\nexec = [\"pg_isready\", \"-p\", \"{instance + 5432}\"]")?.liveness?.check,
                       .exec(["pg_isready", "-p", "{instance + 5432}"]))
        // An interval shorter than the default timeout bounds the timeout.
        XCTAssertEqual(service("[services.w.liveness]\ntcp = \"[::1]:80\"\ninterval = \"200ms\"")?.liveness?.timeout, 200_000)
        XCTAssertNil(service("")?.liveness)
    }

    func testTargetsPerInstance() {
        let table: [(ProbeCheck, Int, ProbeTarget)] = [
            (.http("http://127.0.0.1:{instance + 8000}/healthz"), 2,
             .http(HTTPProbeURL(address: .tcp4(host: "127.0.0.1", port: 8002), path: "/healthz", host: "127.0.0.1:8002"))),
            (.http("http://localhost/"), 0,
             .http(HTTPProbeURL(address: .tcp4(host: "127.0.0.1", port: 80), path: "/", host: "localhost"))),
            (.http("http://[::1]:9000"), 0,
             .http(HTTPProbeURL(address: .tcp6(host: "::1", port: 9000), path: "/", host: "[::1]:9000"))),
            (.http("http://10.0.0.5:81?x=1#frag"), 0,
             .http(HTTPProbeURL(address: .tcp4(host: "10.0.0.5", port: 81), path: "/?x=1", host: "10.0.0.5:81"))),
            (.tcp("localhost:{instance+5432}"), 1, .tcp(.tcp4(host: "127.0.0.1", port: 5433))),
            (.tcp("[::1]:6379"), 0, .tcp(.tcp6(host: "::1", port: 6379))),
            (.exec(["check", "--port={instance + 10}"]), 3, .exec(["check", "--port=13"])),
        ]
        for (check, instance, expected) in table {
            XCTAssertEqual(try ProbeTargets.target(check, instance: instance, sockets: []).get(), expected, "\(check)")
        }
        // A placeholder that takes the port out of range fails that instance's probe (a reason, no crash).
        guard case let .failure(problem) = ProbeTargets.target(.tcp("127.0.0.1:{instance + 65535}"), instance: 1, sockets: []) else {
            return XCTFail("port 65536 accepted")
        }
        XCTAssertEqual(problem.message, "bad tcp probe address \"127.0.0.1:65536\": the port must be a number from 1 to 65535")
    }

    func testMistakes() {
        let table: [(String, [String])] = [
            ("[services.w.liveness]\ninterval = \"1s\"",
             ["c.toml:3:13: [services.w.liveness] needs one of http = \"http://…\", tcp = \"HOST:PORT\" or exec = [\"…\"]"]),
            ("[services.w.liveness]\nhttp = \"http://127.0.0.1/\"\ntcp = \"127.0.0.1:1\"",
             ["c.toml:5:1: [services.w.liveness] has both http and tcp (http is at 4:1); use one"]),
            ("[services.w.liveness]\nhttp = \"https://127.0.0.1/\"",
             ["c.toml:4:8: bad http probe URL \"https://127.0.0.1/\": https is not supported (a probe speaks plain HTTP to a local port; for TLS use exec = [\"curl\", \"-fsS\", \"https://…\"])"]),
            ("[services.w.liveness]\nhttp = \"http://example.com/health\"",
             ["c.toml:4:8: bad http probe URL \"http://example.com/health\": the host must be an IP address (127.0.0.1, [::1]) or localhost: names are not resolved"]),
            ("[services.w.liveness]\nhttp = \"127.0.0.1:80\"",
             ["c.toml:4:8: bad http probe URL \"127.0.0.1:80\": expected http://HOST:PORT/PATH"]),
            ("[services.w.liveness]\nhttp = \"http://127.0.0.1:0/\"",
             ["c.toml:4:8: bad http probe URL \"http://127.0.0.1:0/\": the port must be a number from 1 to 65535"]),
            ("[services.w.liveness]\ntcp = \"db:5432\"",
             ["c.toml:4:7: bad tcp probe address \"db:5432\": the host must be an IP address (127.0.0.1, [::1]) or localhost: names are not resolved"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:{instanse}\"",
             ["accepted-or-error"]), // not a placeholder ("{" not followed by instance): a bad port
            ("[services.w.liveness]\nhttp = \"http://127.0.0.1:{instance + x}/\"",
             ["c.toml:4:26: bad placeholder \"{instance + x}\": expected {instance} or {instance + N} with N a whole number"]),
            ("[services.w.liveness]\nexec = []", ["c.toml:4:8: liveness.exec must not be empty"]),
            ("[services.w.liveness]\nexec = \"pg_isready\"", ["c.toml:4:8: liveness.exec must be an array of strings, not a string"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:1\"\ninterval = \"0\"", ["c.toml:5:12: liveness.interval must be more than 0"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:1\"\ninterval = 10", ["c.toml:5:12: liveness.interval must be a string duration, not an integer"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:1\"\nfailures = 0", ["c.toml:5:12: liveness.failures must be between 1 and 1000, not 0"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:1\"\nsuccesses = \"2\"", ["c.toml:5:13: liveness.successes must be an integer, not a string"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:1\"\ninterval = \"1s\"\ntimeout = \"2s\"",
             ["c.toml:6:11: liveness.timeout (2s) must not be more than its interval (1s) (interval at 5:12)"]),
            ("[services.w.liveness]\ntcp = \"127.0.0.1:1\"\nfailure = 2",
             ["c.toml:5:1: unknown key \"failure\" in [services.w.liveness]; did you mean \"failures\"?"]),
            ("liveness = 5", ["c.toml:3:12: liveness must be a table like { http = \"http://127.0.0.1:8000/healthz\" }, not an integer"]),
            ("livenes = {}", ["c.toml:3:1: unknown key \"livenes\" in [services.w]; did you mean \"liveness\"?"]),
            ("ready = \"probe\"", ["c.toml:3:9: ready = \"probe\" needs a [services.w.readiness] table (http, tcp or exec)"]),
            ("[services.w.readiness]\ntcp = \"127.0.0.1:1\"",
             ["c.toml:3:13: a readiness probe decides when an instance is ready: it needs ready = \"probe\" (not the default ready = \"started\")"]),
            ("ready = \"notify\"\n[services.w.readiness]\ntcp = \"127.0.0.1:1\"",
             ["c.toml:4:13: a readiness probe decides when an instance is ready: it needs ready = \"probe\" (not ready = \"notify\")"]),
        ]
        for (keys, expected) in table where expected != ["accepted-or-error"] {
            XCTAssertEqual(errors(keys), expected, keys)
        }
        XCTAssertEqual(errors("[services.w.liveness]\ntcp = \"127.0.0.1:{instanse}\"").count, 1)
    }

    func testUnlistedSocketPlaceholderInAProbe() {
        XCTAssertEqual(errors("[services.w.liveness]\nexec = [\"check\", \"{socket.api.fd}\"]"),
                       ["c.toml:4:19: placeholder {socket.api.fd} names socket \"api\", which is not in this service's sockets"])
    }
}
