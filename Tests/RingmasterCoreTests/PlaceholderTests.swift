import XCTest
@testable import RingmasterCore

/// Placeholders (Placeholders.swift): what `scan` finds, what `substitute` makes of it for
/// an instance, ServiceConfig.forInstance, and each mistake at its exact column.
final class PlaceholderTests: XCTestCase {
    private func scanned(_ text: String) -> [String] {
        Placeholders.scan(text).map { match in
            switch match.result {
            case let .success(.instance(offset)): return "\(match.range) instance\(offset < 0 ? "" : "+")\(offset)"
            case let .success(.socket(name)): return "\(match.range) socket \(name)"
            case let .failure(problem): return "\(match.range) error: \(problem.message)"
            }
        }
    }

    func testScan() {
        let table: [(String, [String])] = [
            ("plain", []),
            ("awk '{print $1}' {\"json\": 1} {} { } {inst}", []),
            ("{instance}", ["0..<10 instance+0"]),
            ("{instance + 8000}", ["0..<17 instance+8000"]),
            ("{instance+8000}", ["0..<15 instance+8000"]),
            ("{ instance\t+  1 }", ["0..<17 instance+1"]),
            ("{instance - 1}", ["0..<14 instance-1"]),
            ("{instance + 0}", ["0..<14 instance+0"]),
            ("{instance + 007}", ["0..<16 instance+7"]),
            ("a{instance}b{instance + 2}c", ["1..<11 instance+0", "12..<26 instance+2"]),
            ("é{instance}", ["2..<12 instance+0"]),
            ("{socket.http.fd}", ["0..<16 socket http"]),
            ("{socket.y.z.fd}", ["0..<15 socket y.z"]),
            ("{socket.}", ["0..<9 error: unknown placeholder \"{socket.}\": expected {socket.NAME.fd}"]),
            ("{socket.http}", ["0..<13 error: unknown placeholder \"{socket.http}\": expected {socket.NAME.fd}"]),
            ("{instance * 2}", ["0..<14 error: bad placeholder \"{instance * 2}\": expected {instance} or {instance + N} with N a whole number"]),
            ("{instance + }", ["0..<13 error: bad placeholder \"{instance + }\": expected {instance} or {instance + N} with N a whole number"]),
            ("{instance + -1}", ["0..<15 error: bad placeholder \"{instance + -1}\": expected {instance} or {instance + N} with N a whole number"]),
            ("{instance + 1.5}", ["0..<16 error: bad placeholder \"{instance + 1.5}\": expected {instance} or {instance + N} with N a whole number"]),
            ("{instance + 1 + 2}", ["0..<18 error: bad placeholder \"{instance + 1 + 2}\": expected {instance} or {instance + N} with N a whole number"]),
            ("{instances}", ["0..<11 error: bad placeholder \"{instances}\": expected {instance} or {instance + N} with N a whole number"]),
            ("{instance + 1234567890}", ["0..<23 error: bad placeholder \"{instance + 1234567890}\": N can have at most 9 digits"]),
            ("x {instance + 1", ["2..<15 error: unterminated placeholder \"{instance + 1\": missing '}'"]),
        ]
        for (text, expected) in table {
            XCTAssertEqual(scanned(text), expected, text)
        }
    }

    func testSubstitute() {
        let table: [(String, Int, [String], String)] = [
            ("{instance}", 0, [], "0"),
            ("{instance}", 2, [], "2"),
            ("PORT={instance + 8000}", 2, [], "PORT=8002"),
            ("{instance - 1}", 0, [], "-1"),
            ("{instance+999999999}", 10_000, [], "1000009999"),
            ("w{instance}.{instance + 1}.log", 3, [], "w3.4.log"),
            ("--a={socket.a.fd} --b={socket.b.fd} {socket.a.fd}", 0, ["b", "a"], "--a=4 --b=3 4"),
            ("--fd {socket.zz.fd}", 0, ["a"], "--fd {socket.zz.fd}"),
            ("{instance * 2} {instance}", 1, [], "{instance * 2} 1"),
            ("awk '{print}' {}", 1, [], "awk '{print}' {}"),
            ("é{instance}ü", 5, [], "é5ü"),
        ]
        for (text, instance, sockets, expected) in table {
            XCTAssertEqual(Placeholders.substitute(text, instance: instance, sockets: sockets), expected, text)
        }
        XCTAssertEqual(Placeholders.substitute("{socket.s.fd} {instance}", instance: nil, sockets: ["s"]), "3 {instance}")
    }

    func testForInstance() throws {
        let c = try ConfigLoader.parse(text: """
            [sockets.s]
            listen = "@s"
            [services.web]
            command = ["app", "--port", "{instance + 8000}", "--fd", "{socket.s.fd}", "--name=web-{instance}"]
            sockets = ["s"]
            instances = 3
            environment = { PORT = "{instance + 8000}", SLOT = "{ instance - 1 }", PLAIN = "x" }
            working-directory = "/srv/w{instance}"
            env-file = "e.env"
            """, file: "/c/c.toml", externalFiles: .inMemory(["/c/e.env": "FROM_FILE={instance}\n"]))
        let web = c.services[0]
        XCTAssertEqual(web.command[2], "{instance + 8000}", "the config keeps what was written")
        let second = web.forInstance(1)
        XCTAssertEqual(second.command, ["app", "--port", "8001", "--fd", "3", "--name=web-1"])
        XCTAssertEqual(second.environment, [EnvironmentVariable("PORT", "8001"), EnvironmentVariable("SLOT", "0"),
                                            EnvironmentVariable("PLAIN", "x")])
        XCTAssertEqual(second.workingDirectory, "/srv/w1")
        XCTAssertEqual(second.envFileEnvironment, [EnvironmentVariable("FROM_FILE", "{instance}")], "env files are taken as written")
        XCTAssertEqual(second.resolvedCommand, second.command)
        XCTAssertEqual(web.resolvedCommand, ["app", "--port", "{instance + 8000}", "--fd", "3", "--name=web-{instance}"])
        XCTAssertEqual((0..<3).map { web.forInstance($0).environment[0].value }, ["8000", "8001", "8002"])
    }

    /// `ringctl check` points at the `{` of a bad placeholder, through escapes and line
    /// breaks of the string it is in.
    func testErrorsAtTheirExactColumn() {
        func errors(_ service: String) -> [String] {
            do {
                _ = try ConfigLoader.parse(text: "[sockets.s]\nlisten = \"@s\"\n[services.web]\n" + service, file: "c.toml")
                return []
            } catch {
                return error.diagnostics.map(\.description)
            }
        }
        let bad = "bad placeholder \"{instance * 2}\": expected {instance} or {instance + N} with N a whole number"
        let table: [(String, [String])] = [
            ("command = [\"app\", \"--port={instance * 2}\"]", ["c.toml:4:27: " + bad]),
            ("command = [\"app\", \"\\t\\\"{instance * 2}\"]", ["c.toml:4:24: " + bad]),
            ("command = [\"app\"]\nenvironment = { PORT = \"80{instance * 2}\" }", ["c.toml:5:27: " + bad]),
            ("command = [\"app\"]\n[services.web.environment]\nPORT = '{instance * 2}'", ["c.toml:6:9: " + bad]),
            ("command = [\"app\"]\nworking-directory = \"/srv/{instance * 2}\"", ["c.toml:5:27: " + bad]),
            ("shell = true\ncommand = \"\"\"\nexec app \\\n  --port {instance * 2}\"\"\"", ["c.toml:7:10: " + bad]),
            ("command = [\"app\"]\nenvironment = { FD = \"{socket.t.fd}\" }",
             ["c.toml:5:23: placeholder {socket.t.fd} names socket \"t\", which is not in this service's sockets"]),
            ("command = [\"app\", \"{instance + 1}\", \"{instances}\", \"{instance\"]",
             ["c.toml:4:38: bad placeholder \"{instances}\": expected {instance} or {instance + N} with N a whole number",
              "c.toml:4:53: unterminated placeholder \"{instance\": missing '}'"]),
        ]
        for (toml, expected) in table {
            XCTAssertEqual(errors(toml), expected, toml)
        }
    }
}
