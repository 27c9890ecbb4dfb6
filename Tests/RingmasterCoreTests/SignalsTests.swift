import XCTest
@testable import RingmasterCore

final class SignalsTests: XCTestCase {
    func testNamesToNumbers() {
        let cases: [(String, Int32)] = [
            ("TERM", 15), ("SIGTERM", 15), ("term", 15), ("SigTerm", 15), ("15", 15), ("KILL", 9), ("9", 9),
            ("HUP", 1), ("INT", 2), ("QUIT", 3), ("USR1", 10), ("USR2", 12), ("CHLD", 17), ("CLD", 17),
            ("IOT", 6), ("POLL", 29), ("WINCH", 28), ("SYS", 31),
            ("RTMIN", Signals.realtimeMinimum), ("SIGRTMIN+3", Signals.realtimeMinimum + 3),
            ("rtmax", Signals.realtimeMaximum), ("RTMAX-1", Signals.realtimeMaximum - 1),
            ("64", 64),
        ]
        for (name, number) in cases {
            XCTAssertEqual(Signals.number(named: name), number, name)
        }
        XCTAssertEqual(Signals.realtimeMinimum, 34)
        XCTAssertEqual(Signals.realtimeMaximum, 64)
    }

    func testRejected() {
        for name in ["", "0", "65", "-1", "SIG", "TREM", "SIGSIGTERM", "RTMIN+31", "RTMIN-1", "RTMAX+1",
                     "RTMIN++1", "RTMIN+", "RTMIN+ 1", "TERM ", "15s"] {
            XCTAssertNil(Signals.number(named: name), name)
        }
    }

    func testNumbersToNames() {
        let cases: [(Int32, String?)] = [
            (15, "TERM"), (9, "KILL"), (6, "ABRT"), (17, "CHLD"), (29, "IO"), (34, "RTMIN"), (35, "RTMIN+1"),
            (64, "RTMAX"), (0, nil), (65, nil), (-1, nil),
        ]
        for (number, name) in cases {
            XCTAssertEqual(Signals.name(of: number), name, "\(number)")
        }
        XCTAssertEqual(Signals.description(of: 15), "SIGTERM")
        XCTAssertEqual(Signals.description(of: 99), "signal 99")
        for entry in Signals.table {
            XCTAssertEqual(Signals.number(named: Signals.name(of: entry.number) ?? ""), entry.number, entry.name)
        }
    }

    func testUnknownNameMessage() {
        XCTAssertEqual(Signals.unknownNameMessage("TREM"), #"bad signal name "TREM"; did you mean "TERM"?"#)
        XCTAssertEqual(Signals.unknownNameMessage("sigkil"), #"bad signal name "sigkil"; did you mean "KILL"?"#)
        XCTAssertEqual(Signals.unknownNameMessage("BANANA"), #"bad signal name "BANANA""#)
    }
}
