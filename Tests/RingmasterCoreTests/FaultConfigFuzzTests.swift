import Foundation
import XCTest
@testable import RingmasterCore
import TestSupport

/// The fault suite's config case (docs/reliability.md): 10,000 seeded mutations of valid
/// files through the pure parser and validator, `ConfigLoader.parse`. No crash, no hang; a
/// rejection always names a real place (`file:line:column: message`, the line and column
/// inside the file that has the problem), and an acceptance always yields a config the
/// daemon can run (every reference resolved, a dependency order for every service).
///
/// The mutations (TestSupport's ConfigSamples.mutate) mix bytes (flips, cuts, insertions of
/// TOML punctuation, duplicated spans) and structure (values swapped for values of other types,
/// keys renamed, lines duplicated or dropped, tables added, dependencies that close cycles), on
/// several seed files and on conf.d merges of two files. `ringctl check` on a sample, through
/// the real binary, is
/// IntegrationTests.FaultTests.testRingctlCheckOnMutatedFilesNeverCrashesAndAlwaysGivesAPosition.
final class FaultConfigFuzzTests: XCTestCase {
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
        let seeds = ConfigSamples.seeds.map { Array($0.utf8) }
        var accepted = 0, rejected = 0, diagnostics = 0, merged = 0
        var problems: [String] = []
        var slowest = (seconds: 0.0, round: -1)
        let started = Date()
        for round in 0..<10_000 {
            var bytes = seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) { ConfigSamples.mutate(&bytes, rng: &rng) }
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
