import Foundation
import XCTest
@testable import RingmasterCore

/// The fault suite's config case (docs/reliability.md): 10,000 seeded mutations of valid
/// files through the pure parser and validator, `ConfigLoader.parse`. No crash, no hang; a
/// rejection always names a real place (`file:line:column: message`, the line and column
/// inside the file that has the problem), and an acceptance always yields a config the
/// daemon can run (every reference resolved, a dependency order for every service).
///
/// The mutations mix bytes (flips, cuts, insertions of TOML punctuation, duplicated spans)
/// and structure (values swapped for values of other types, keys renamed, lines duplicated or
/// dropped, tables added, dependencies that close cycles), on several seed files and on
/// conf.d merges of two files. `ringctl check` on a sample, through the real binary, is
/// IntegrationTests.FaultTests.testRingctlCheckOnMutatedFilesNeverCrashesAndAlwaysGivesAPosition.
final class FaultConfigFuzzTests: XCTestCase {
    typealias SplitMix64 = ConfigRobustnessTests.SeededGenerator

    static let seeds: [String] = [
        ConfigRobustnessTests.valid,
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
    static func mutate(_ text: inout [UInt8], rng: inout SplitMix64) {
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

    /// Every diagnostic names one of the files, at a line and column inside it.
    func check(_ diagnostics: [ConfigDiagnostic], sources: [(file: String, bytes: [UInt8])], round: Int,
               problems: inout [String]) {
        if diagnostics.isEmpty { problems.append("round \(round): rejected with no diagnostic") }
        for d in diagnostics {
            guard let source = sources.first(where: { $0.file == d.location.file }) else {
                problems.append("round \(round): \(d) names a file that was not given"); continue
            }
            let lines = source.bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
            guard (1...lines.count).contains(d.location.line) else {
                problems.append("round \(round): \(d): line \(d.location.line) of a \(lines.count)-line file"); continue
            }
            let width = lines[lines.startIndex + d.location.line - 1].count
            if !(1...(width + 1)).contains(d.location.column) {
                problems.append("round \(round): \(d): column \(d.location.column) of a \(width)-byte line")
            }
            if d.message.isEmpty || d.message.contains(where: { $0.isNewline }) {
                problems.append("round \(round): \(d.description.debugDescription): the message must be one non-empty line")
            }
            if d.description != "\(d.location.file):\(d.location.line):\(d.location.column): \(d.message)" {
                problems.append("round \(round): \(d.description) is not file:line:column: message")
            }
        }
    }

    /// What the daemon needs of an accepted config.
    func checkAccepted(_ config: Config, round: Int, problems: inout [String]) {
        let services = Set(config.services.map(\.name)), sockets = Set(config.sockets.map(\.name))
        if services.count != config.services.count { problems.append("round \(round): duplicate service names accepted") }
        for s in config.services {
            if s.command.first?.isEmpty != false { problems.append("round \(round): \(s.name): command \(s.command)") }
            if s.instances < 0 { problems.append("round \(round): \(s.name): \(s.instances) instances") }
            if s.startLimit.count < 1 { problems.append("round \(round): \(s.name): start-limit count \(s.startLimit.count)") }
            if !(1...64).contains(s.stopSignal) { problems.append("round \(round): \(s.name): stop-signal \(s.stopSignal)") }
            for a in s.after where !services.contains(a) { problems.append("round \(round): \(s.name): after unknown \(a)") }
            for k in s.sockets where !sockets.contains(k) { problems.append("round \(round): \(s.name): unknown socket \(k)") }
        }
        if DependencyGraph(config).startOrder.count != config.services.count {
            problems.append("round \(round): no start order for every service (a cycle accepted?)")
        }
    }

    /// Found by the fuzzing below: a diagnostic quoting a multi-line value was two lines, so
    /// `ringctl check` printed a line that is not `file:line:column: message`.
    func testADiagnosticQuotingAMultiLineValueIsOneLine() {
        let text = "[services.a]\ncommand = [\"a\"]\nready = \"\"\"x\ny\"\"\"\nstop-signal = \"\\u0007\"\n"
        XCTAssertThrowsError(try ConfigLoader.parse(text: text, file: "m.toml")) { error in
            let diagnostics = (error as? ConfigErrors)?.diagnostics ?? []
            XCTAssertEqual(diagnostics.count, 2)
            for d in diagnostics {
                XCTAssertFalse(d.description.contains { $0.isNewline || $0 == "\u{7}" }, "not one line: \(d.description.debugDescription)")
            }
            XCTAssertEqual(diagnostics.first?.location, SourceLocation(file: "m.toml", line: 3, column: 9))
        }
    }

    func testTenThousandMutatedConfigsNeverCrashAndEveryRejectionHasAPosition() {
        var rng = SplitMix64(state: 0xFA17_C0DE_2026)
        let seeds = Self.seeds.map { Array($0.utf8) }
        var accepted = 0, rejected = 0, diagnostics = 0, merged = 0
        var problems: [String] = []
        var slowest = (seconds: 0.0, round: -1)
        let started = Date()
        for round in 0..<10_000 {
            var bytes = seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) { Self.mutate(&bytes, rng: &rng) }
            // Every fifth round: the mutant is a conf.d file merged over an intact main file.
            var sources: [(file: String, bytes: [UInt8])] = [("m.toml", bytes)]
            if round % 5 == 4 {
                sources = [("main.toml", seeds[round % seeds.count]), ("conf.d/10-m.toml", bytes)]
                merged += 1
            }
            let t0 = Date()
            do {
                let config = try ConfigLoader.parse(sources: sources.map { ($0.file, String(decoding: $0.bytes, as: UTF8.self)) })
                accepted += 1
                checkAccepted(config, round: round, problems: &problems)
            } catch {
                rejected += 1
                diagnostics += error.diagnostics.count
                check(error.diagnostics, sources: sources.map { ($0.file, Array(String(decoding: $0.bytes, as: UTF8.self).utf8)) },
                      round: round, problems: &problems)
            }
            let took = Date().timeIntervalSince(t0)
            if took > slowest.seconds { slowest = (took, round) }
        }
        let total = Date().timeIntervalSince(started)
        XCTAssertTrue(problems.isEmpty, "\(problems.count) problems, e.g.:\n" + problems.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(rejected, 5_000, "the mutations should mostly break the files")
        XCTAssertGreaterThan(accepted, 100, "some mutations should still be valid")
        XCTAssertLessThan(slowest.seconds, 1.0, "round \(slowest.round) took \(slowest.seconds)s")
        print("FIGURE config fuzz (parser): 10,000 mutants (\(merged) as conf.d merges) = \(accepted) accepted, "
              + "\(rejected) rejected with \(diagnostics) file:line:column diagnostics, 0 crashes, \(problems.count) problems, "
              + String(format: "%.1f s in all, slowest %.1f ms", total, slowest.seconds * 1000))
    }
}
