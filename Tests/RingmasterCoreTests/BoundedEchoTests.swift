import RingmasterCore
import XCTest

/// Messages quoting user input stay small.
final class BoundedEchoTests: XCTestCase {
    func testCutOnACharacterBoundaryWithTheLength() {
        XCTAssertEqual(boundedEcho("short"), "short")
        let long = String(repeating: "é", count: 1000) // 2 bytes each
        let cut = boundedEcho(long, limit: 11)
        XCTAssertEqual(cut, String(repeating: "é", count: 5) + "… (2000 bytes in all)")
        let diagnostic = ConfigDiagnostic(SourceLocation(file: "f", line: 1, column: 1), "bad \"" + String(repeating: "z", count: 20 << 20) + "\"")
        XCTAssertLessThan(diagnostic.description.utf8.count, 600)
    }
}
