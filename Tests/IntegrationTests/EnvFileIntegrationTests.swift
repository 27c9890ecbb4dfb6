// `env-file` with a real daemon: the variables reach the child byte for byte
// (/proc/PID/environ), `environment` wins over them, an edited env file makes `ringctl
// reload` restart that service and no other, and `ringctl check` points into the file.
import Foundation
import Glibc
import XCTest

final class EnvFileIntegrationTests: DBusTestCase {
    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    func testAnEnvFileReachesTheChildExactly() throws {
        let web = service("web")
        try write("web.env", #"""
            # database settings
            export DB_URL='postgres://u:p@localhost/db?x=1#frag'
            QUOTED="a \"b\" \$HOME \\ tab\there"
            MULTI="line1
            line2"
            PLAIN=plain value   # a comment
            HASH=a#b
            EMPTY=
            OVERRIDDEN=from-file
              export   SPACED = spaced
            SINGLE='no \n escapes "here"'

            """#)
        let daemon = try startBusDaemon("""
            [services.\(web)]
            command = ["sleep", "1000"]
            env-file = ["web.env", "-not-there.env"]
            environment = { OVERRIDDEN = "from-toml" }
            """)
        let child = try XCTUnwrap(try requireInstances(1, of: web, daemon: daemon)[0])
        let expected: [String: String] = [
            "DB_URL": "postgres://u:p@localhost/db?x=1#frag",
            "QUOTED": "a \"b\" $HOME \\ tab\there",
            "MULTI": "line1\nline2",
            "PLAIN": "plain value",
            "HASH": "a#b",
            "EMPTY": "",
            "OVERRIDDEN": "from-toml",
            "SPACED": "spaced",
            "SINGLE": "no \\n escapes \"here\"",
        ]
        for (name, value) in expected {
            XCTAssertEqual(child.environment[name], value, name)
        }
    }

    func testAnEditedEnvFileRestartsThatServiceOnReloadAndNoOther() throws {
        let web = service("web"), other = service("other")
        try write("web.env", "export COLOR=blue\n")
        try write("other.env", "SHAPE=round\n")
        let daemon = try startBusDaemon("""
            [services.\(web)]
            command = ["sleep", "1000"]
            instances = 2
            env-file = "web.env"

            [services.\(other)]
            command = ["sleep", "1000"]
            env-file = "other.env"
            """)
        let webBefore = try requireInstances(2, of: web, daemon: daemon)
        let otherBefore = try requireInstances(1, of: other, daemon: daemon)
        XCTAssertEqual(webBefore[0]?.environment["COLOR"], "blue")

        // Unchanged files: a reload restarts nothing.
        XCTAssertEqual(try ringctl(["reload"]).status, 0)
        try write("web.env", "# the same variables, written differently\nCOLOR='blue'\n")
        XCTAssertEqual(try ringctl(["reload"]).status, 0)
        try requireService(web, running: 2)
        XCTAssertEqual(instances(of: web, daemon: daemon).mapValues(\.pid), webBefore.mapValues(\.pid))

        try write("web.env", "COLOR=\"green\"\n")
        let r = try ringctl(["reload"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let webAfter = try require("both \(web) instances replaced with COLOR=green", timeout: 20) { () -> [Int: ProcessInfoEntry]? in
            let now = self.instances(of: web, daemon: daemon)
            let replaced = now.keys.sorted() == [0, 1] && now.allSatisfy { i, p in
                p.pid != webBefore[i]?.pid && p.environment["COLOR"] == "green"
            }
            return replaced ? now : nil
        }
        XCTAssertEqual(webAfter.count, 2)
        XCTAssertEqual(instances(of: other, daemon: daemon).mapValues(\.pid), otherBefore.mapValues(\.pid),
                       "\(other) was restarted by a change to \(web)'s env file")

        // A broken env file: the reload is refused, naming the place in the env file.
        try write("web.env", "COLOR=\"green\nSIZE=1\n")
        let refused = try ringctl(["reload"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("\(dir)/web.env:1:7: unterminated value: missing '\"'"), refused.stderr)
        XCTAssertEqual(instances(of: web, daemon: daemon).mapValues(\.pid), webAfter.mapValues(\.pid))
    }

    func testRingctlCheckPointsIntoTheEnvFile() throws {
        try write("app.env", "OK=1\nexport 2BAD=x\n")
        let path = try writeConfig("""
            [services.app]
            command = ["true"]
            env-file = ["app.env", "missing.env", "-optional.env"]
            """, name: "check.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", path])
        XCTAssertEqual(r.status, 1)
        let out = r.stderr + r.stdout
        XCTAssertTrue(out.contains("\(path):3:24: env-file \(dir)/missing.env: cannot open the file: No such file or directory"), out)
        XCTAssertTrue(out.contains("\(dir)/app.env:2:8: expected a variable name"), out)
        XCTAssertFalse(out.contains("optional.env"), out)
    }
}
