import XCTest
@testable import RingmasterCore

final class DurationTests: XCTestCase {
    let ms = USec.perMillisecond
    let s = USec.perSecond

    func testValid() {
        let cases: [(String, USec)] = [
            ("100ms", 100 * ms), ("10s", 10 * s), ("1.5s", 1_500 * ms), ("2min", 120 * s), ("1h", 3600 * s),
            ("1h 30min", 5400 * s), ("1h30min", 5400 * s), ("1min 1s 1ms", 61 * s + ms), ("0", 0),
            ("0s", 0), ("0.5ms", 500), ("250us", 250), ("1.25h", 4500 * s), ("0.000001s", 1),
            ("0.0000019s", 1), ("10 s", 10 * s), ("  5s  ", 5 * s), ("1s 1s", 2 * s), ("007s", 7 * s),
            ("1.123456789123s", 1_123_456),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try Durations.parse(text), expected, text)
        }
    }

    func testInvalid() {
        let syntax = ["10 sec", "10", "", " ", "s", "-1s", "1.s", ".5s", "1 h30", "1S", "1h,30min", "10m", "1e3s",
                      "1,5s", "10s5", "5 seconds", "1µs", "+1s", "0 s 1"]
        for text in syntax {
            XCTAssertThrowsError(try Durations.parse(text), text) { error in
                XCTAssertEqual((error as? DurationError)?.message,
                               "bad duration \"\(text)\": expected a number followed by ms, s, min or h")
            }
        }
        for text in ["99999999999999999999s", "5124096000h", "18446744073709551615s"] {
            XCTAssertThrowsError(try Durations.parse(text), text) { error in
                XCTAssertEqual((error as? DurationError)?.message, "bad duration \"\(text)\": too large")
            }
        }
    }

    /// Whatever the state machines print with formatDuration reads back.
    func testFormattedDurationsParse() {
        for usec: USec in [0, 1, 999, 100 * ms, 1500 * ms, 10 * s, 120 * s, 3600 * s] {
            XCTAssertEqual(try Durations.parse(formatDuration(usec)), usec, formatDuration(usec))
        }
    }
}
