// Config texts for the tests of the parser (RingmasterCoreTests) and of `ringctl check`
// (IntegrationTests): a valid file using every key, the seeds and the seeded mutations of the
// config fuzzing (docs/reliability.md), and a 5,000-service file.
public enum ConfigSamples {
    /// A valid file using every key (and comments, escapes, a multi-line literal command).
    public static let valid = """
        # a stack
        [sockets.http]
        listen = "127.0.0.1:8080"
        [sockets.admin]
        systemd = "admin"

        [services.web]
        command = ["python3", "-m", "app", "--fd", "{socket.http.fd}"]
        instances = 4
        sockets = ["http", "admin"]
        ready = "notify"
        restart = "always"
        restart-delay = "100ms"
        restart-delay-max = "30s"
        stable-after = "1h 30min"
        start-limit = { count = 5, interval = "10s" }
        stop-signal = "SIGTERM"
        stop-timeout = "1.5s"
        environment = { APP_ENV = "production", 'quoted key' = "\\u00e9\\t" }
        working-directory = "~/src/app"
        after = ["db"]
        autostart = true

        [services.db]
        command = '''
        postgres -D ~/pg \\
          -k /tmp'''
        shell = true
        restart = "on-failure"

        [services.worker]
        command = [
          "worker",  # comment
          "--queue=default",
        ]
        instances = 0
        after = ["db", "web"]
        """

    /// Seeds of the mutations: `valid`, one with every socket form and inline tables, one
    /// with dotted keys and multi-line strings.
    public static let seeds: [String] = [
        valid,
        """
        [sockets.http]
        listen = "[::1]:8080"
        [sockets.unix]
        listen = "/run/user/1000/app.sock"
        [sockets.abstract]
        listen = "@app"

        [services.api]
        command = ["api", "--listen-fd", "{socket.http.fd}", "--admin-fd", "{socket.unix.fd}"]
        sockets = ["http", "unix", "abstract"]
        instances = 8
        ready = "notify"
        stop-signal = "SIGINT"
        stop-timeout = "90s"
        restart-delay = "0"
        restart-delay-max = "2min"
        start-limit = { count = 50, interval = "1min" }

        [services.cron]
        command = "while :; do date; sleep 60; done"
        shell = true
        restart = "never"
        autostart = false
        """,
        """
        services.a.command = ["a"]
        services.b = { command = ["b"], after = ["a"], environment = { X = "1" } }

        [services.c]
        command = [
            "c",
            '--literal=\\\\no-escape',
            \"\"\"multi
        line\"\"\",
        ]
        after = ["a", "b"]
        environment.PATH = "/usr/bin"
        environment."WITH SPACE" = "ok"
        """,
    ]

    /// Values of every TOML type and of every kind the validator checks, good and bad.
    static let values = [
        "\"x\"", "''", "1", "-1", "0", "3", "99999999999999999999999", "1.5", "-0.0", "inf", "nan", "true", "false",
        "[]", "{}", "[\"a\", 1]", "[[]]", "{ a = 1 }", "1979-05-27T07:32:00Z", "07:32:00", "\"10 parsecs\"", "\"0\"",
        "\"-1s\"", "\"1h 30min\"", "\"18446744073709551615s\"", "\"TREM\"", "\"SIGKILL\"", "\"KILL\"", "\"64\"", "\"@\"",
        "\"[::1]:99999\"", "\"127.0.0.1:0\"", "\"/rel/../x\"", "\"relative.sock\"", "\"notify\"", "\"sometimes\"",
        "[\"ghost\"]", "[\"http\", \"http\"]", "{ count = 0, interval = \"0\" }", "{ count = 5 }", "'''x'''",
        "\"\\u0000\"", "\"\\uD800\"", "\"{socket.nope.fd}\"", "[\"{socket.http.fd}\"]",
    ]

    static let keys = [
        "command", "shell", "instances", "sockets", "ready", "restart", "restart-delay", "restart-delay-max",
        "stable-after", "start-limit", "stop-signal", "stop-timeout", "environment", "working-directory", "after",
        "autostart", "listen", "systemd", "colour", "Command", "instances.x", "\"quoted\"", "'lit'", "a.b.c", "",
    ]

    static let headers = [
        "[services.new]", "[sockets.new]", "[services]", "[[services.arr]]", "[services.\"a b\"]", "[services.web.extra]",
        "[sockets]", "[other]", "[services.web]", "[services.db]", "[ services . spaced ]", "[services.]", "[]",
        "[services.é]", "[services.x.command]",
    ]

    /// Applies one mutation to `text`, bytes or structure.
    public static func mutate(_ text: inout [UInt8], rng: inout SplitMix64) {
        var lines = text.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        func joined() -> [UInt8] { Array(lines.joined(separator: [0x0A])) }
        let punctuation = Array("[]{}\"'=.,#\n\r\t\\ -_+:0123456789abcdefxzutn".utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF]
        switch Int.random(in: 0..<12, using: &rng) {
        case 0 where !text.isEmpty:
            text[Int.random(in: 0..<text.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        case 1 where !text.isEmpty:
            text.removeSubrange(Int.random(in: 0..<text.count, using: &rng)...)
        case 2:
            text.insert(punctuation.randomElement(using: &rng)!, at: Int.random(in: 0...text.count, using: &rng))
        case 3 where !text.isEmpty:
            let i = Int.random(in: 0..<text.count, using: &rng)
            let span = text[i..<min(text.count, i + Int.random(in: 1...80, using: &rng))]
            text.insert(contentsOf: span, at: Int.random(in: 0...text.count, using: &rng))
        case 4, 5:
            // a value replaced by another of any type
            let candidates = lines.indices.filter { lines[$0].contains(UInt8(ascii: "=")) }
            guard let i = candidates.randomElement(using: &rng), let eq = lines[i].firstIndex(of: UInt8(ascii: "=")) else { return }
            lines[i] = Array(lines[i][...eq]) + Array((" " + values.randomElement(using: &rng)!).utf8)
            text = joined()
        case 6:
            // a key renamed
            let candidates = lines.indices.filter { lines[$0].contains(UInt8(ascii: "=")) }
            guard let i = candidates.randomElement(using: &rng), let eq = lines[i].firstIndex(of: UInt8(ascii: "=")) else { return }
            lines[i] = Array((keys.randomElement(using: &rng)! + " ").utf8) + Array(lines[i][eq...])
            text = joined()
        case 7 where !lines.isEmpty:
            // a line duplicated (duplicate keys, duplicate tables) somewhere else
            let line = lines.randomElement(using: &rng)!
            lines.insert(line, at: Int.random(in: 0...lines.count, using: &rng))
            text = joined()
        case 8 where !lines.isEmpty:
            lines.remove(at: Int.random(in: 0..<lines.count, using: &rng))
            text = joined()
        case 9:
            lines.insert(Array(headers.randomElement(using: &rng)!.utf8), at: Int.random(in: 0...lines.count, using: &rng))
            text = joined()
        case 10:
            // a dependency on a service of the file (maybe a cycle) or on none
            let names = lines.compactMap { line -> String? in
                let s = String(decoding: line, as: UTF8.self)
                guard s.hasPrefix("[services."), s.hasSuffix("]") else { return nil }
                return String(s.dropFirst(10).dropLast())
            } + ["ghost"]
            let at = lines.indices.filter { String(decoding: lines[$0], as: UTF8.self).hasPrefix("[services.") }.randomElement(using: &rng)
            lines.insert(Array("after = [\"\(names.randomElement(using: &rng)!)\"]".utf8), at: (at ?? -1) + 1)
            text = joined()
        default:
            // lines swapped: keys end up in other tables, before their table, or at the top
            guard lines.count > 1 else { return }
            let a = Int.random(in: 0..<lines.count, using: &rng), b = Int.random(in: 0..<lines.count, using: &rng)
            lines.swapAt(a, b)
            text = joined()
        }
    }

    /// 5,000 services, autostart off, each with a socket and environment, after the one before
    /// and (past the tenth) after the one at half its number: a long chain and a wide fan-in.
    public static func fiveThousandServices(port: UInt16) -> String {
        var text = "[sockets.http]\nlisten = \"127.0.0.1:\(port)\"\n"
        for i in 0..<5_000 {
            text += """

                [services.svc-\(i)]
                command = ["/usr/bin/app", "--id", "\(i)", "--fd", "{socket.http.fd}"]
                instances = \(i % 4 + 1)
                sockets = ["http"]
                restart-delay = "\(i % 900 + 100)ms"
                environment = { ID = "\(i)", ROLE = "worker" }
                after = [\(i == 0 ? "" : "\"svc-\(i - 1)\"")\(i > 10 ? ", \"svc-\(i / 2)\"" : "")]
                autostart = false

                """
        }
        return text
    }
}
