import XCTest
@testable import RingmasterCore

/// The env file grammar (EnvFile.swift), one rule a row: what a file gives, and for each
/// kind of mistake the exact `file:line:column: message`.
final class EnvFileTests: XCTestCase {
    private func variables(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            return try EnvFile.parse(Array(text.utf8), file: "a.env").map { "\($0.name)=\($0.value)" }
        } catch {
            XCTFail("rejected \(text.debugDescription): \(error)", file: file, line: line)
            return []
        }
    }

    private func problem(_ bytes: [UInt8]) -> String {
        do {
            let entries = try EnvFile.parse(bytes, file: "a.env")
            return "accepted: \(entries.map { "\($0.name)=\($0.value)" })"
        } catch {
            return error.description
        }
    }

    func testValidLines() {
        let table: [(String, [String])] = [
            ("", []),
            ("A=1", ["A=1"]),
            ("A=1\nB=2\n", ["A=1", "B=2"]),
            ("\n  \n\t\nA=1\n\n", ["A=1"]),
            ("# a comment\n  # indented\nA=1 # trailing\n#B=2", ["A=1"]),
            ("export A=1", ["A=1"]),
            ("export\tA=1\nexport   B=2", ["A=1", "B=2"]),
            ("export=1", ["export=1"]),
            ("exportA=1", ["exportA=1"]),
            ("  A  =  1  ", ["A=1"]),
            ("A=", ["A="]),
            ("A=   ", ["A="]),
            ("_a9_=x", ["_a9_=x"]),
            ("A=hello world  ", ["A=hello world"]),
            ("A=a#b", ["A=a#b"]),
            ("A=a #b", ["A=a"]),
            ("A=a\t#b", ["A=a"]),
            ("A= #x", ["A="]),
            ("A=#x", ["A=#x"]),
            ("A=a\\nb", ["A=a\\nb"]),
            ("A=it's \"so\"", ["A=it's \"so\""]),
            ("A='a \"b\" \\n $x # y'", ["A=a \"b\" \\n $x # y"]),
            ("A='l1\nl2'\nB=2", ["A=l1\nl2", "B=2"]),
            ("A=''", ["A="]),
            ("A=\"\"", ["A="]),
            ("A=\"a \\\"q\\\" \\\\ \\$x \\` \\n \\t \\r\"", ["A=a \"q\" \\ $x ` \n \t \r"]),
            ("A=\"l1\nl2\"", ["A=l1\nl2"]),
            ("A=\"a\\\nb\"", ["A=ab"]),
            ("A=\"a\\\r\nb\"", ["A=ab"]),
            ("A=\"single ' inside\"", ["A=single ' inside"]),
            ("A='x'  # c\nB=\"y\"#c", ["A=x", "B=y"]),
            ("A=1\r\nB=\"2\"\r\nC='3'\r\n", ["A=1", "B=2", "C=3"]),
            ("A='x\r\ny'", ["A=x\ny"]),
            ("A=1\nA=2", ["A=1", "A=2"]),
            ("A=héllo wörld", ["A=héllo wörld"]),
            ("A=x=y", ["A=x=y"]),
            ("A=  spaced", ["A=spaced"]),
            ("A=\"  kept  \"", ["A=  kept  "]),
        ]
        for (text, expected) in table {
            XCTAssertEqual(variables(text), expected, text.debugDescription)
        }
    }

    func testErrorPositions() {
        let table: [(String, String)] = [
            ("1A=x", "a.env:1:1: expected a variable name (a letter or '_', then letters, digits, '_'), found '1'"),
            ("A-B=1", "a.env:1:2: '-' cannot be part of a variable name"),
            ("A.B=1", "a.env:1:2: '.' cannot be part of a variable name"),
            ("A", "a.env:1:2: A has no '=': write A= for an empty value"),
            ("\n  NAME  \n", "a.env:2:9: NAME has no '=': write NAME= for an empty value"),
            ("A B=1", "a.env:1:3: expected '=' after A, found 'B'"),
            ("=1", "a.env:1:1: expected a variable name (a letter or '_', then letters, digits, '_'), found '='"),
            ("export", "a.env:1:7: export has no '=': write export= for an empty value"),
            ("A=\"abc", "a.env:1:3: unterminated value: missing '\"'"),
            ("A=\"abc\nB=2\n", "a.env:1:3: unterminated value: missing '\"'"),
            ("x=1\n  A='abc", "a.env:2:5: unterminated value: missing \"'\""),
            ("A=\"a\\qb\"", "a.env:1:5: unknown escape \\q in a double-quoted value (\\\\ \\\" \\$ \\` \\n \\t \\r; use single quotes for backslashes as written)"),
            ("A=\"é\\q\"", "a.env:1:5: unknown escape \\q in a double-quoted value (\\\\ \\\" \\$ \\` \\n \\t \\r; use single quotes for backslashes as written)"),
            ("A=\"x\\", "a.env:1:5: unterminated value: escape at the end of the file"),
            ("A=\"x\" y", "a.env:1:7: unexpected 'y' after the closing quote of A's value; quote the whole value"),
            ("A='x'y", "a.env:1:6: unexpected 'y' after the closing quote of A's value; quote the whole value"),
            ("A=1\rB=2", "a.env:1:4: carriage return must be followed by a newline"),
            ("A=1\n\r", "a.env:2:1: carriage return must be followed by a newline"),
        ]
        for (text, expected) in table {
            XCTAssertEqual(problem(Array(text.utf8)), expected, text.debugDescription)
        }
    }

    func testBytesThatCannotBeInAValue() {
        XCTAssertEqual(problem(Array("A=a".utf8) + [0] + Array("b".utf8)), "a.env:1:4: a value cannot contain a NUL character")
        XCTAssertEqual(problem(Array("A='a".utf8) + [0] + Array("b'".utf8)), "a.env:1:5: a value cannot contain a NUL character")
        XCTAssertEqual(problem(Array("A=1\nB=é".utf8) + [0xFF]), "a.env:2:4: byte 0xff is not UTF-8")
        XCTAssertEqual(problem([0xC3]), "a.env:1:1: byte 0xc3 is not UTF-8")
        XCTAssertEqual(problem([0xEF, 0xBB, 0xBF] + Array("A=1\n1B=2".utf8)),
                       "a.env:2:1: expected a variable name (a letter or '_', then letters, digits, '_'), found '1'")
        XCTAssertEqual(try EnvFile.parse([0xEF, 0xBB, 0xBF] + Array("A=1".utf8), file: "a.env").map(\.value), ["1"],
                       "a byte-order mark is skipped")
    }

    func testEntriesKnowWhereTheirNamesAre() throws {
        let entries = try EnvFile.parse(Array("# c\n  export  PORT=1\nA='x\ny'\nB=2".utf8), file: "/e/a.env")
        XCTAssertEqual(entries.map(\.location.description), ["/e/a.env:2:11", "/e/a.env:3:1", "/e/a.env:5:1"])
    }

    func testPathResolution() {
        func resolve(_ written: String, _ config: String = "/etc/rm/ringmaster.toml", home: String? = "/home/u") -> String {
            switch EnvFile.resolve(written, configFile: config, home: home) {
            case let .success(path): return path
            case let .failure(problem): return "error: " + problem.message
            }
        }
        XCTAssertEqual(resolve("web.env"), "/etc/rm/web.env")
        XCTAssertEqual(resolve("../shared/.env"), "/etc/rm/../shared/.env")
        XCTAssertEqual(resolve("web.env", "/etc/rm/conf.d/web.toml"), "/etc/rm/conf.d/web.env")
        XCTAssertEqual(resolve("web.env", "relative.toml"), "web.env")
        XCTAssertEqual(resolve("/abs/.env"), "/abs/.env")
        XCTAssertEqual(resolve("~/.env"), "/home/u/.env")
        XCTAssertEqual(resolve("~"), "/home/u")
        XCTAssertEqual(resolve("~/x", home: "/"), "/x")
        XCTAssertEqual(resolve("~/x", home: nil), "error: env-file \"~/x\": ~ needs $HOME, which is not set")
        XCTAssertEqual(resolve("~bob/.env"), "error: env-file \"~bob/.env\": only ~ and ~/… are expanded, not ~user")
        XCTAssertEqual(resolve(""), "error: env-file must not be an empty path")
    }
}
