import XCTest
@testable import RingmasterCore
import TestSupport

/// Scale and hostile input: a 5,000-service file, and seeded mutations of a valid file
/// that must never crash and must always be rejected with a real position.
final class ConfigRobustnessTests: XCTestCase {

    func testValidFixtureIsValid() throws {
        let config = try ConfigLoader.parse(text: ConfigSamples.valid, file: "v.toml")
        XCTAssertEqual(config.services.map(\.name), ["web", "db", "worker"])
        XCTAssertEqual(DependencyGraph(config).startOrder, ["db", "web", "worker"])
    }

    func testFiveThousandServices() throws {
        let text = ConfigSamples.fiveThousandServices(port: 8080)
        let n = 5_000
        let config = try ConfigLoader.parse(text: text, file: "big.toml")
        XCTAssertEqual(config.services.count, n)
        XCTAssertEqual(config.services.last?.resolvedCommand.last, "3")
        let graph = DependencyGraph(config)
        XCTAssertEqual(graph.startOrder.count, n)
        XCTAssertEqual(graph.startOrder.first, "svc-0")
        XCTAssertEqual(graph.startOrder.last, "svc-\(n - 1)")

        // and with a cycle closing the long chain, one error at the right place
        let cyclic = text.replacingFirst("after = []", with: "after = [\"svc-\(n - 1)\"]")
        XCTAssertThrowsError(try ConfigLoader.parse(text: cyclic, file: "big.toml")) { error in
            let diagnostics = (error as? ConfigErrors)?.diagnostics ?? []
            XCTAssertFalse(diagnostics.isEmpty)
            XCTAssertTrue(diagnostics.allSatisfy { $0.message.hasPrefix("dependency cycle: svc-0 -> svc-") })
        }
    }

    /// 2,000 seeded mutations: byte flips, truncations, insertions of TOML punctuation,
    /// deletions and duplications of a span. No crash, no hang, and every rejection points
    /// at a real place in the file.
    func testMutationsNeverCrashAndAlwaysHavePositions() {
        var rng = SplitMix64(state: 0x5EED_0F_21A6_3A57E)
        let original = Array(ConfigSamples.valid.utf8)
        let punctuation = Array("[]{}\"'=.,#\n\r\t\\ -_+:0123456789abcdefxzutn".utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF]
        var rejected = 0
        for round in 0..<2_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                guard !bytes.isEmpty else { break }
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<6, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 2: bytes.removeSubrange(i...)
                case 3: bytes.insert(punctuation.randomElement(using: &rng) ?? 0x20, at: i)
                case 4: bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...40, using: &rng)))
                default:
                    let span = bytes[i..<min(bytes.count, i + Int.random(in: 1...80, using: &rng))]
                    bytes.insert(contentsOf: span, at: Int.random(in: 0...bytes.count, using: &rng))
                }
            }
            let lines = bytes.filter { $0 == 0x0A }.count + 1
            do {
                let document = try TOML.parse(bytes: bytes, file: "m.toml")
                _ = try ConfigLoader.validate(document, files: ["m.toml"])
            } catch let diagnostic as ConfigDiagnostic {
                rejected += 1
                check([diagnostic], lines: lines, round: round)
            } catch let errors as ConfigErrors {
                rejected += 1
                XCTAssertFalse(errors.diagnostics.isEmpty, "round \(round)")
                check(errors.diagnostics, lines: lines, round: round)
            } catch {
                XCTFail("round \(round): unexpected error \(error)")
            }
        }
        XCTAssertGreaterThan(rejected, 1_000)
    }

    func check(_ diagnostics: [ConfigDiagnostic], lines: Int, round: Int) {
        for d in diagnostics {
            XCTAssertEqual(d.location.file, "m.toml", "round \(round)")
            XCTAssertGreaterThanOrEqual(d.location.line, 1, "round \(round): \(d)")
            XCTAssertLessThanOrEqual(d.location.line, lines, "round \(round): \(d)")
            XCTAssertGreaterThanOrEqual(d.location.column, 1, "round \(round): \(d)")
            XCTAssertFalse(d.message.isEmpty, "round \(round)")
        }
    }

    /// Random sequences of TOML fragments: a second generator that reaches states byte
    /// mutations of one file rarely do (deep nesting, odd headers, long lines).
    func testRandomFragmentsNeverCrash() {
        var rng = SplitMix64(state: 42)
        let fragments = [
            "[", "]", "[[", "]]", "{", "}", "a", "b.c", "\"k\"", "'k'", " = ", "=", ",", ".", "\n", "\r\n", "# c\n",
            "1", "-0x1", "1e5", "inf", "true", "\"s\"", "'''m\n'''", "\"\"\"x\\\n y\"\"\"", "1979-05-27T07:32:00Z",
            "07:32:00", "[services.x]\n", "command = [\"x\"]\n", "after = [\"x\"]\n", "[[services]]\n", "\\u00e9",
            "\"\\U0001F600\"", "services.y.command = 'z'\n", "[sockets.s]\nlisten = \"@s\"\n",
        ]
        for round in 0..<2_000 {
            var text = ""
            for _ in 0..<Int.random(in: 1...60, using: &rng) {
                text += fragments.randomElement(using: &rng) ?? ""
            }
            let lines = text.utf8.filter { $0 == 0x0A }.count + 1
            do {
                _ = try ConfigLoader.parse(text: text, file: "m.toml")
            } catch {
                check(error.diagnostics, lines: lines, round: round)
            }
        }
    }

    func testPathologicalInputs() {
        let inputs = [
            String(repeating: "[", count: 200_000),
            String(repeating: "{", count: 200_000),
            "a = " + String(repeating: "[", count: 200_000),
            "a = " + String(repeating: "{a = ", count: 50_000),
            String(repeating: "a.", count: 100_000) + "a = 1",
            "a = [" + String(repeating: "1,", count: 100_000) + "]",
            String(repeating: "\"", count: 100_000),
            "a = \"" + String(repeating: "\\", count: 100_001),
            String(repeating: "[[a]]\n", count: 10_000),
            String(repeating: "\n", count: 100_000) + "=",
        ]
        for text in inputs {
            do {
                _ = try ConfigLoader.parse(text: text, file: "p.toml")
            } catch {
                for d in error.diagnostics {
                    XCTAssertGreaterThanOrEqual(d.location.line, 1)
                    XCTAssertGreaterThanOrEqual(d.location.column, 1)
                }
            }
        }
    }
}
