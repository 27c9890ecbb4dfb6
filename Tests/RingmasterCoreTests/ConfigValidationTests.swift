import XCTest
@testable import RingmasterCore

/// Config validation: the decoded model for valid files, and for each kind of problem the
/// exact `file:line:column: message`.
final class ConfigValidationTests: XCTestCase {
    let ms = USec.perMillisecond
    let s = USec.perSecond

    func config(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> Config? {
        do {
            return try ConfigLoader.parse(text: text, file: "c.toml")
        } catch {
            XCTFail("rejected:\n\(error)", file: file, line: line)
            return nil
        }
    }

    func errors(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            let c = try ConfigLoader.parse(text: text, file: "c.toml")
            XCTFail("accepted: \(c)", file: file, line: line)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    func testSpecExample() throws {
        let c = try XCTUnwrap(config("""
            [sockets.http]
            listen = "127.0.0.1:8080"

            [services.web]
            command = ["python3", "-m", "app", "--fd", "{socket.http.fd}"]
            instances = 4
            sockets = ["http"]
            ready = "notify"
            restart = "on-failure"
            restart-delay = "100ms"
            restart-delay-max = "30s"
            stable-after = "10s"
            start-limit = { count = 3, interval = "1min" }
            stop-signal = "INT"
            stop-timeout = "5s"
            environment = { APP_ENV = "production", EMPTY = "" }
            working-directory = "~/src/app"
            after = ["db"]
            autostart = false

            [services.db]
            command = ["postgres"]
            """))
        XCTAssertEqual(c.sockets, [SocketConfig(name: "http", source: .listen(.tcp4(host: "127.0.0.1", port: 8080)))])
        XCTAssertEqual(c.files, ["c.toml"])
        var web = ServiceConfig(name: "web", command: ["python3", "-m", "app", "--fd", "{socket.http.fd}"])
        web.instances = 4
        web.sockets = ["http"]
        web.ready = .notify
        web.restart = .onFailure
        web.restartDelay = 100 * ms
        web.restartDelayMax = 30 * s
        web.stableAfter = 10 * s
        web.startLimit = StartLimit(count: 3, interval: 60 * s)
        web.stopSignal = 2
        web.stopTimeout = 5 * s
        web.environment = [EnvironmentVariable("APP_ENV", "production"), EnvironmentVariable("EMPTY", "")]
        web.workingDirectory = "~/src/app"
        web.after = ["db"]
        web.autostart = false
        XCTAssertEqual(c.services, [web, ServiceConfig(name: "db", command: ["postgres"])])
        XCTAssertEqual(web.resolvedCommand, ["python3", "-m", "app", "--fd", "3"])
    }

    func testDefaults() throws {
        let c = try XCTUnwrap(config("[services.a]\ncommand = [\"true\"]"))
        let a = try XCTUnwrap(c.service(named: "a"))
        XCTAssertEqual(a, ServiceConfig(name: "a", command: ["true"]))
        XCTAssertEqual(a.instances, 1)
        XCTAssertEqual(a.restart, .always)
        XCTAssertEqual(a.ready, .started)
        XCTAssertEqual(a.stopSignal, 15)
        XCTAssertTrue(a.autostart)
        XCTAssertEqual(try XCTUnwrap(config("")), Config(files: ["c.toml"]))
    }

    func testWorkingDirectories() {
        for dir in ["/srv/app", "~", "~/src/app", "src/app", "."] {
            XCTAssertEqual(config("[services.a]\ncommand = [\"x\"]\nworking-directory = \"\(dir)\"")?
                .services.first?.workingDirectory, dir)
        }
    }

    func testShellCommands() throws {
        let c = try XCTUnwrap(config("""
            [sockets.s]
            listen = "@s"
            [services.a]
            shell = true
            command = "exec app --fd {socket.s.fd} >> log"
            sockets = ["s"]
            [services.b]
            command = ["echo hi | wc"]
            shell = true
            """))
        XCTAssertEqual(c.services[0].command, ["/bin/sh", "-c", "exec app --fd {socket.s.fd} >> log"])
        XCTAssertEqual(c.services[0].resolvedCommand, ["/bin/sh", "-c", "exec app --fd 3 >> log"])
        XCTAssertTrue(c.services[0].shell)
        XCTAssertEqual(c.services[1].command, ["/bin/sh", "-c", "echo hi | wc"])
    }

    /// `mode` of a path socket: octal, at most 0777, only with listen = "/path".
    func testSocketMode() throws {
        XCTAssertEqual(config("[sockets.x]\nlisten = \"/run/a.sock\"\nmode = \"0660\"")?.sockets.first?.mode, 0o660)
        XCTAssertEqual(config("[sockets.x]\nlisten = \"/run/a.sock\"\nmode = \"666\"")?.sockets.first?.mode, 0o666)
        XCTAssertNil(try XCTUnwrap(config("[sockets.x]\nlisten = \"/run/a.sock\"")).sockets.first?.mode)
        XCTAssertEqual(SocketConfig.defaultMode, 0o600)
        XCTAssertEqual(errors("[sockets.x]\nlisten = \"127.0.0.1:80\"\nmode = \"0600\""),
                       ["c.toml:3:1: mode applies only to a unix socket at a path (listen = \"/…\")"])
        XCTAssertEqual(errors("[sockets.x]\nlisten = \"@app\"\nmode = \"0600\"").count, 1)
        for bad in ["0800", "1777", "+777", "rw", "07777", "60"] {
            XCTAssertEqual(errors("[sockets.x]\nlisten = \"/a.sock\"\nmode = \"\(bad)\"").first,
                           "c.toml:3:8: mode must be octal permission bits such as \"0600\" or \"0660\" (at most 0777), not \"\(bad)\"", bad)
        }
    }

    func testListenForms() throws {
        let cases: [(String, ListenAddress)] = [
            ("127.0.0.1:8080", .tcp4(host: "127.0.0.1", port: 8080)),
            ("0.0.0.0:1", .tcp4(host: "0.0.0.0", port: 1)),
            ("[::1]:8080", .tcp6(host: "::1", port: 8080)),
            ("[::]:65535", .tcp6(host: "::", port: 65535)),
            ("[fe80::1:2:3:4]:80", .tcp6(host: "fe80::1:2:3:4", port: 80)),
            ("[1:2:3:4:5:6:7:8]:80", .tcp6(host: "1:2:3:4:5:6:7:8", port: 80)),
            ("[::ffff:192.0.2.1]:80", .tcp6(host: "::ffff:192.0.2.1", port: 80)),
            ("/run/user/1000/app.sock", .unix(path: "/run/user/1000/app.sock")),
            ("@app", .abstract(name: "app")),
        ]
        for (text, expected) in cases {
            let c = config("[sockets.x]\nlisten = \"\(text)\"")
            XCTAssertEqual(c?.sockets.first?.source, .listen(expected), text)
            XCTAssertEqual(expected.description, text)
        }
        XCTAssertEqual(config("[sockets.x]\nsystemd = \"http\"")?.sockets.first?.source, .systemd(name: "http"))
    }

    func testBadListenAddresses() {
        let long = "/" + String(repeating: "a", count: 107)
        let cases: [(String, String)] = [
            ("8080", #"expected "host:port", "[::1]:port", "/abs/path.sock" or "@abstract""#),
            ("", #"expected "host:port", "[::1]:port", "/abs/path.sock" or "@abstract""#),
            ("localhost:80", #""localhost" is not an IPv4 address (write e.g. 127.0.0.1; host names are not resolved)"#),
            ("127.0.0.1", #"expected "host:port", "[::1]:port", "/abs/path.sock" or "@abstract""#),
            ("256.0.0.1:80", #""256.0.0.1" is not an IPv4 address (write e.g. 127.0.0.1; host names are not resolved)"#),
            ("127.0.0.01:80", #""127.0.0.01" is not an IPv4 address (write e.g. 127.0.0.1; host names are not resolved)"#),
            ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
            ("127.0.0.1:65536", "the port must be a number from 1 to 65535"),
            ("127.0.0.1:+80", "the port must be a number from 1 to 65535"),
            ("127.0.0.1:", "the port must be a number from 1 to 65535"),
            (":80", "missing host before ':' (use 0.0.0.0 for every interface)"),
            ("::1:80", #"an IPv6 address needs brackets, as in "[::1]:8080""#),
            ("[::1]", "expected ':port' after ']'"),
            ("[::1:80", "missing ']' after the IPv6 address"),
            ("[1::2::3]:80", #""1::2::3" is not an IPv6 address"#),
            ("[12345::]:80", #""12345::" is not an IPv6 address"#),
            ("[1:2:3:4:5:6:7]:80", #""1:2:3:4:5:6:7" is not an IPv6 address"#),
            ("[1:2:3:4:5:6:7:8:9]:80", #""1:2:3:4:5:6:7:8:9" is not an IPv6 address"#),
            ("[1:2:3:4::5:6:7:8]:80", #""1:2:3:4::5:6:7:8" is not an IPv6 address"#),
            ("[fe80::1%eth0]:80", #""fe80::1%eth0" is not an IPv6 address"#),
            ("run/app.sock", "a unix socket path must be absolute"),
            (long, "a unix socket path can have at most 107 bytes"),
            ("@", "an abstract socket needs a name after '@'"),
        ]
        for (text, why) in cases {
            XCTAssertEqual(errors("[sockets.x]\nlisten = \"\(text)\""),
                           ["c.toml:2:10: bad listen address \"\(text)\": \(why)"], text)
        }
    }

    /// Each kind of problem, at its exact position.
    func testDiagnostics() {
        let cases: [(toml: String, expected: [String])] = [
            ("[services.web]\ncommand = [\"x\"]\nrestrat = \"never\"",
             [#"c.toml:3:1: unknown key "restrat" in [services.web]; did you mean "restart"?"#]),
            ("[services.web]\ncommand = [\"x\"]\nfoo = 1",
             [#"c.toml:3:1: unknown key "foo" in [services.web]"#]),
            ("[service.web]\ncommand = [\"x\"]",
             [#"c.toml:1:2: unknown key "service" at the top level; did you mean "services"?"#]),
            ("[sockets.a]\nlisten = \"@a\"\nlisen = \"@b\"",
             [#"c.toml:3:1: unknown key "lisen" in [sockets.a]; did you mean "listen"?"#]),
            ("[services.web]\ncommand = [\"x\"]\nrestart-delay = 5",
             ["c.toml:3:17: restart-delay must be a string duration, not an integer"]),
            ("[services.web]\ncommand = [\"x\"]\nstop-timeout = \"10 sec\"",
             [#"c.toml:3:16: bad duration "10 sec": expected a number followed by ms, s, min or h"#]),
            ("[services.web]\ncommand = [\"x\"]\nstop-signal = \"TREM\"",
             [#"c.toml:3:15: bad signal name "TREM"; did you mean "TERM"?"#]),
            ("[services.web]\ncommand = [\"x\"]\nstop-signal = 99",
             ["c.toml:3:15: stop-signal 99 is not a signal number"]),
            ("[services.web]\ncommand = [\"x\"]\nstop-signal = true",
             [#"c.toml:3:15: stop-signal must be a signal name like "TERM", not a boolean"#]),
            ("[services.web]\ncommand = [\"x\"]\nsockets = [\"http\", \"db\"]\n[sockets.http]\nlisten = \"@h\"",
             [#"c.toml:3:20: unknown socket "db""#]),
            ("[sockets.http]\nlisten = \"@h\"\n[services.web]\ncommand = [\"x\"]\nsockets = [\"htp\", \"http\", \"http\"]",
             [#"c.toml:5:12: unknown socket "htp"; did you mean "http"?"#,
              #"c.toml:5:27: socket "http" is listed twice"#]),
            ("[services.web]\ncommand = [\"x\"]\nafter = [\"db\"]\n[services.dbb]\ncommand = [\"x\"]",
             [#"c.toml:3:10: unknown service "db" in after; did you mean "dbb"?"#]),
            ("[services.a]\ncommand = [\"x\"]\nafter = [\"b\"]\n[services.b]\ncommand = [\"x\"]\nafter = [\"a\"]",
             ["c.toml:6:10: dependency cycle: a -> b -> a"]),
            ("[services.a]\ncommand = [\"x\"]\nafter = [\"a\"]",
             ["c.toml:3:10: dependency cycle: a -> a"]),
            ("""
             [services.a]
             command = ["x"]
             after = ["b"]
             [services.b]
             command = ["x"]
             after = ["c", "b"]
             [services.c]
             command = ["x"]
             after = ["d", "a"]
             [services.d]
             command = ["x"]
             """,
             ["c.toml:6:15: dependency cycle: b -> b",
              "c.toml:9:15: dependency cycle: a -> b -> c -> a"]),
            ("[services.web]\ncommand = [\"app\", \"--fd={socket.http.fd}\"]",
             [#"c.toml:2:25: placeholder {socket.http.fd} names socket "http", which is not in this service's sockets"#]),
            ("[services.web]\ncommand = [\"app\", \"{socket.http}\"]",
             [#"c.toml:2:20: unknown placeholder "{socket.http}": expected {socket.NAME.fd}"#]),
            ("[services.web]\ncommand = [\"app\", \"{socket.http.fd\"]",
             [#"c.toml:2:20: unterminated placeholder "{socket.http.fd": missing '}'"#]),
            ("[services.web]\ncommand = \"app --fd {socket.h.fd}\"\nshell = true",
             [#"c.toml:2:21: placeholder {socket.h.fd} names socket "h", which is not in this service's sockets"#]),
            ("[services.web]\ncommand = \"app\"",
             ["c.toml:2:11: command must be an array of strings, not a string (or set shell = true to run it with /bin/sh -c)"]),
            ("[services.web]\ncommand = []", ["c.toml:2:11: command must not be empty"]),
            ("[services.web]\ncommand = [\"\"]", ["c.toml:2:12: command[0] (the program) must not be empty"]),
            ("[services.web]\ncommand = [\"a\", 1]", ["c.toml:2:17: command[1] must be a string, not an integer"]),
            ("[services.web]\ncommand = [\"a\\u0000\"]", ["c.toml:2:12: command[0] must not contain a NUL character"]),
            ("[services.web]\ncommand = [\"a\", \"b\"]\nshell = true",
             ["c.toml:2:11: with shell = true, command must be one string, not an array of 2"]),
            ("[services.web]\ncommand = \"  \"\nshell = true", ["c.toml:2:11: command must not be empty"]),
            ("[services.web]\nshell = true", ["c.toml:1:11: [services.web] has no command"]),
            ("[services.web]\ncommand = [\"x\"]\nshell = \"yes\"", ["c.toml:3:9: shell must be true or false, not a string"]),
            ("[services.web]\ncommand = [\"x\"]\ninstances = -1", ["c.toml:3:13: instances must be between 0 and 10000, not -1"]),
            ("[services.web]\ncommand = [\"x\"]\ninstances = 10001", ["c.toml:3:13: instances must be between 0 and 10000, not 10001"]),
            ("[services.web]\ncommand = [\"x\"]\ninstances = \"4\"", ["c.toml:3:13: instances must be an integer, not a string"]),
            ("[services.web]\ncommand = [\"x\"]\nready = \"notfy\"",
             [#"c.toml:3:9: ready must be "started", "notify" or "probe", not "notfy"; did you mean "notify"?"#]),
            ("[services.web]\ncommand = [\"x\"]\nrestart = \"on_failure\"",
             [#"c.toml:3:11: restart must be "always", "on-failure" or "never", not "on_failure"; did you mean "on-failure"?"#]),
            ("[services.web]\ncommand = [\"x\"]\nrestart = false",
             [#"c.toml:3:11: restart must be "always", "on-failure" or "never", not a boolean"#]),
            ("[services.web]\ncommand = [\"x\"]\nrestart-delay = \"10s\"\nrestart-delay-max = \"1s\"",
             ["c.toml:4:21: restart-delay-max must not be less than restart-delay (at 3:17)"]),
            ("[services.web]\ncommand = [\"x\"]\nstart-limit = 5",
             [#"c.toml:3:15: start-limit must be a table like { count = 5, interval = "10s" }, not an integer"#]),
            ("[services.web]\ncommand = [\"x\"]\nstart-limit = { count = 0, intervl = \"1s\", interval = \"0s\" }",
             ["c.toml:3:25: start-limit.count must be 1 or more",
              #"c.toml:3:28: unknown key "intervl" in [services.web.start-limit]; did you mean "interval"?"#,
              "c.toml:3:55: start-limit.interval must be more than 0"]),
            ("[services.web]\ncommand = [\"x\"]\n[services.web.start-limit]\ncount = \"5\"",
             ["c.toml:4:9: start-limit.count must be an integer, not a string"]),
            ("[services.web]\ncommand = [\"x\"]\nenvironment = { PORT = 8080 }",
             ["c.toml:3:24: environment.PORT must be a string, not an integer (write it in quotes)"]),
            ("[services.web]\ncommand = [\"x\"]\nenvironment = { \"A=B\" = \"1\", LISTEN_FDS = \"3\" }",
             [#"c.toml:3:17: invalid environment variable name "A=B""#,
              "c.toml:3:30: environment variable LISTEN_FDS is set by ringmaster and cannot be overridden"]),
            ("[services.web]\ncommand = [\"x\"]\nenvironment = [\"A=1\"]",
             [#"c.toml:3:15: environment must be a table like { NAME = "value" }, not an array"#]),
            ("[services.web]\ncommand = [\"x\"]\nworking-directory = \"\"",
             ["c.toml:3:21: working-directory must not be empty"]),
            ("[services.web]\ncommand = [\"x\"]\nworking-directory = \"~bob/x\"",
             [#"c.toml:3:21: working-directory "~bob/x": only ~ and ~/… are expanded, not ~user"#]),
            ("[services.web]\ncommand = [\"x\"]\nafter = \"db\"",
             ["c.toml:3:9: after must be an array of strings, not a string"]),
            ("[services.web]\ncommand = [\"x\"]\nautostart = 1", ["c.toml:3:13: autostart must be true or false, not an integer"]),
            ("[services.\"we b\"]\ncommand = [\"x\"]",
             [#"c.toml:1:11: invalid service name "we b": a name may contain only A-Z, a-z, 0-9, '_', '.' and '-'"#]),
            ("[services.-web]\ncommand = [\"x\"]",
             [#"c.toml:1:11: invalid service name "-web": a name must not start with '.' or '-'"#]),
            ("[services.\".web\"]\ncommand = [\"x\"]",
             [#"c.toml:1:11: invalid service name ".web": a name must not start with '.' or '-'"#]),
            ("[services.\"\"]\ncommand = [\"x\"]",
             [#"c.toml:1:11: invalid service name "": a name must not be empty"#]),
            ("[services.\(String(repeating: "a", count: 65))]\ncommand = [\"x\"]",
             ["c.toml:1:11: invalid service name \"\(String(repeating: "a", count: 65))\": a name can have at most 64 characters"]),
            ("[sockets.\"a/b\"]\nlisten = \"@x\"",
             [#"c.toml:1:10: invalid socket name "a/b": a name may contain only A-Z, a-z, 0-9, '_', '.' and '-'"#]),
            ("[services]\nweb = \"x\"", [#"c.toml:2:7: service "web" must be a table, not a string"#]),
            ("services = 1", ["c.toml:1:12: services must be a table, not an integer"]),
            ("[[services]]\ncommand = [\"x\"]", ["c.toml:1:1: services must be a table, not an array"]),
            ("[sockets]\nhttp = 1", [#"c.toml:2:8: socket "http" must be a table, not an integer"#]),
            ("[sockets.http]\nlisten = \"@a\"\nsystemd = \"http\"",
             ["c.toml:3:1: [sockets.http] has both listen and systemd (listen is at 2:1); use one"]),
            ("[sockets.http]", [#"c.toml:1:10: [sockets.http] needs listen = "…" or systemd = "…""#]),
            ("[sockets.http]\nsystemd = \"a:b\"",
             [#"c.toml:2:11: bad systemd socket name "a:b": FileDescriptorName= is 1-255 printable ASCII characters, without ':' or spaces"#]),
            ("[sockets.http]\nlisten = 8080", ["c.toml:2:10: listen must be a string, not an integer"]),
            ("[services.\"a.b\"]\ncommand = [\"x\"]\nbad = 1",
             [#"c.toml:3:1: unknown key "bad" in [services."a.b"]"#]),
        ]
        for c in cases {
            XCTAssertEqual(errors(c.toml), c.expected, c.toml)
        }
    }

    /// Every problem is reported, in file order, not just the first.
    func testCollectsEveryProblemInOrder() {
        let e = errors("""
            [services.b]
            command = "x"
            restrat = 1
            [services.a]
            command = ["x"]
            after = ["nope"]
            stop-timeout = 3
            [sockets.s]
            listen = "nowhere"
            """)
        XCTAssertEqual(e, [
            "c.toml:2:11: command must be an array of strings, not a string (or set shell = true to run it with /bin/sh -c)",
            #"c.toml:3:1: unknown key "restrat" in [services.b]; did you mean "restart"?"#,
            #"c.toml:6:10: unknown service "nope" in after"#,
            "c.toml:7:16: stop-timeout must be a string duration, not an integer",
            #"c.toml:9:10: bad listen address "nowhere": expected "host:port", "[::1]:port", "/abs/path.sock" or "@abstract""#,
        ])
    }

    func testSyntaxErrorStopsBeforeValidation() {
        XCTAssertEqual(errors("[services.web]\ncommand = [\"x\"\nrestrat = 1"),
                       ["c.toml:3:1: expected ',' or ']' in the array, found 'r'"])
    }

    func testClosestMatch() {
        let keys = ConfigValidator.serviceKeys
        let cases: [(String, String?)] = [
            ("restrat", "restart"), ("Restart", "restart"), ("comand", "command"), ("instance", "instances"),
            ("stop-sginal", "stop-signal"), ("working_directory", "working-directory"), ("env", nil), ("x", nil),
            ("autostop", nil),
        ]
        for (word, expected) in cases {
            XCTAssertEqual(closestMatch(to: word, among: keys), expected, word)
        }
    }
}
