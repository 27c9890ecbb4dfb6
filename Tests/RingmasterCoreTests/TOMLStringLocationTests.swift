import XCTest
@testable import RingmasterCore

/// TOMLValue.location(ofByte:): where a character inside a string value is written, through
/// escapes, multi-byte characters and the line breaks of multi-line strings.
final class TOMLStringLocationTests: XCTestCase {
    /// The place of the first "X" in the value of `k`.
    private func placeOfX(_ toml: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let doc = try TOML.parse(toml, file: "f.toml")
        let value = try XCTUnwrap(doc["k"]?.value, file: file, line: line)
        let text = try XCTUnwrap(value.string, file: file, line: line)
        let offset = try XCTUnwrap(Array(text.utf8).firstIndex(of: UInt8(ascii: "X")), file: file, line: line)
        let at = value.location(ofByte: offset)
        return "\(at.line):\(at.column)"
    }

    func testCharactersInsideStrings() throws {
        let table: [(String, String)] = [
            ("k = \"abX\"", "1:8"),
            ("k = \"aX\\tb\\n\"", "1:7"),
            ("k = 'abX'", "1:8"),
            ("k   =   \"X\"", "1:10"),
            ("k = \"é€X\"", "1:8"),
            ("k = \"\\t\\\"X\"", "1:10"),
            ("k = \"\\u00e9X\"", "1:12"),
            ("k = \"\\U0001F600X\"", "1:16"),
            ("k = \"\"\"\nab\n  cX\"\"\"", "3:4"),
            ("k = \"\"\"ab\ncX\"\"\"", "2:2"),
            ("k = \"\"\"\nab \\\n    X\"\"\"", "3:5"),
            ("k = \"\"\"\r\nab\r\nX\"\"\"", "3:1"),
            ("k = '''\nfirst\n\tX'''", "3:2"),
            ("k = \"\"\"\n\"\"X\"\"\"", "2:3"),
        ]
        for (toml, expected) in table {
            XCTAssertEqual(try placeOfX(toml), expected, toml.debugDescription)
        }
    }

    func testOtherValuesAnswerTheirOwnLocation() throws {
        let doc = try TOML.parse("k = [1, 2]", file: "f.toml")
        let value = try XCTUnwrap(doc["k"]?.value)
        XCTAssertEqual(value.location(ofByte: 3), value.location)
    }

    func testTheRunsAreNotPartOfEquality() throws {
        let a = try XCTUnwrap(TOML.parse("k = \"x\"", file: "f.toml")["k"]?.value)
        XCTAssertEqual(a, TOMLValue(.string("x"), at: a.location))
    }
}
