import XCTest
@testable import RingmasterCore

/// TOML 1.0: every value type and the edge cases of each, positions of keys and values,
/// and invalid documents with the exact line:column of the first error.
final class TOMLParserTests: XCTestCase {

    func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> TOMLTable {
        do {
            return try TOML.parse(text, file: "t.toml")
        } catch {
            XCTFail("unexpected error: \(error)", file: file, line: line)
            return TOMLTable()
        }
    }

    /// The value at a dotted path of bare keys, e.g. "a.b.c".
    func value(_ path: String, in table: TOMLTable) -> TOMLValue? {
        var parts = path.split(separator: ".").map(String.init)
        let last = parts.removeLast()
        var t = table
        for p in parts {
            guard let next = t[p]?.value.table else { return nil }
            t = next
        }
        return t[last]?.value
    }

    func loc(_ line: Int, _ column: Int) -> SourceLocation { SourceLocation(file: "t.toml", line: line, column: column) }

    // MARK: scalars

    func testStrings() {
        let cases: [(toml: String, expected: String)] = [
            (#"a = "plain""#, "plain"),
            (#"a = """#, ""),
            (#"a = "tab\there\nnl \"q\" \\ \b\f\r""#, "tab\there\nnl \"q\" \\ \u{8}\u{C}\r"),
            (#"a = "\u00E9\U0001F600""#, "é😀"),
            ("a = \"raw\ttab\"", "raw\ttab"),
            (#"a = 'C:\Users\nodejs'"#, #"C:\Users\nodejs"#),
            (#"a = ''"#, ""),
            ("a = \"\"\"\nfirst\nsecond\"\"\"", "first\nsecond"),
            ("a = \"\"\"one \\\n    two \\\n\n   three\"\"\"", "one two three"),
            ("a = \"\"\"trailing ws \\   \n  next\"\"\"", "trailing ws next"),
            ("a = \"\"\"\"\"\"", ""),
            ("a = \"\"\"\"quoted\"\"\"\"", "\"quoted\""),
            ("a = \"\"\"two \"\" inside\"\"\"", "two \"\" inside"),
            ("a = \"\"\"ends with two\"\"\"\"\"", "ends with two\"\""),
            ("a = \"\"\"crlf\r\nline\"\"\"", "crlf\nline"),
            ("a = '''\nliteral \\n ''kept'' '''", "literal \\n ''kept'' "),
            ("a = ''''one quote''''", "'one quote'"),
            ("a = '''\r\nx'''", "x"),
            (##"a = "# not a comment""##, "# not a comment"),
        ]
        for c in cases {
            XCTAssertEqual(value("a", in: parse(c.toml))?.string, c.expected, c.toml)
        }
    }

    func testIntegers() {
        let cases: [(String, Int64)] = [
            ("99", 99), ("+99", 99), ("-17", -17), ("0", 0), ("+0", 0), ("-0", 0),
            ("1_000", 1000), ("5_349_221", 5_349_221), ("1_2_3_4_5", 12345),
            ("0xDEADBEEF", 0xDEADBEEF), ("0xdead_beef", 0xDEADBEEF), ("0x00ff", 255),
            ("0o755", 0o755), ("0o0_1", 1), ("0b11010110", 0b11010110), ("0b0", 0),
            ("9223372036854775807", .max), ("-9223372036854775808", .min), ("0x7FFFFFFFFFFFFFFF", .max),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(value("a", in: parse("a = " + text))?.integer, expected, text)
        }
    }

    func testFloats() {
        let cases: [(String, Double)] = [
            ("1.0", 1.0), ("+1.0", 1.0), ("3.1415", 3.1415), ("-0.01", -0.01), ("5e+22", 5e22), ("1e06", 1e6),
            ("-2E-2", -0.02), ("6.626e-34", 6.626e-34), ("224_617.445_991_228", 224_617.445_991_228),
            ("0.0", 0), ("-0.0", -0.0), ("0e0", 0), ("1e1_0", 1e10), ("0.1e-0_1", 0.01),
            ("inf", .infinity), ("+inf", .infinity), ("-inf", -.infinity),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(value("a", in: parse("a = " + text))?.float, expected, text)
        }
        for text in ["nan", "+nan", "-nan"] {
            XCTAssertEqual(value("a", in: parse("a = " + text))?.float?.isNaN, true, text)
        }
    }

    func testBooleans() {
        let t = parse("t = true\nf = false")
        XCTAssertEqual(value("t", in: t)?.boolean, true)
        XCTAssertEqual(value("f", in: t)?.boolean, false)
    }

    func testDatesAndTimesParseAsText() {
        let cases: [(String, TOMLDateTime.Form)] = [
            ("1979-05-27T07:32:00Z", .offsetDateTime),
            ("1979-05-27t07:32:00z", .offsetDateTime),
            ("1979-05-27T00:32:00-07:00", .offsetDateTime),
            ("1979-05-27T00:32:00.999999+05:30", .offsetDateTime),
            ("1979-05-27 07:32:00Z", .offsetDateTime),
            ("1979-05-27T07:32:00", .localDateTime),
            ("1979-05-27 00:32:00.5", .localDateTime),
            ("1979-05-27", .localDate),
            ("2024-02-29", .localDate),
            ("2000-02-29", .localDate),
            ("07:32:00", .localTime),
            ("00:32:00.999999", .localTime),
            ("23:59:60", .localTime),
        ]
        for (text, form) in cases {
            let v = value("a", in: parse("a = \(text) # c"))
            XCTAssertEqual(v?.datetime, TOMLDateTime(form: form, text: text), text)
            XCTAssertEqual(v?.typeName, "datetime")
        }
        // a date followed by a space and something that is not a time stays a date
        let d = parse("a = [1979-05-27 ]")
        XCTAssertEqual(value("a", in: d)?.array?.first?.datetime?.form, .localDate)
    }

    // MARK: structure

    func testKeys() {
        let t = parse("""
            bare_key-1 = 1
            "quoted key" = 2
            'literal "key"' = 3
            "" = 4
            1234 = 5
            site."google.com".ok = true
            a . b . c = 6
            3.14 = 7
            """)
        XCTAssertEqual(t.keys, ["bare_key-1", "quoted key", "literal \"key\"", "", "1234", "site", "a", "3"])
        XCTAssertEqual(t["site"]?.value.table?["google.com"]?.value.table?["ok"]?.value.boolean, true)
        XCTAssertEqual(value("a.b.c", in: t)?.integer, 6)
        XCTAssertEqual(value("3.14", in: t)?.integer, 7)
    }

    func testArrays() {
        let t = parse("""
            empty = []
            ints = [1, 2, 3]
            mixed = ["a", 1, 2.5, true, [1], { x = 1 }]
            nested = [[1, 2], ["a"]]
            multi = [
              1,  # one
              2,
            # a comment line
              3,
            ]
            trailing = [1,2,]
            """)
        XCTAssertEqual(value("empty", in: t)?.array?.count, 0)
        XCTAssertEqual(value("ints", in: t)?.array?.compactMap(\.integer), [1, 2, 3])
        XCTAssertEqual(value("mixed", in: t)?.array?.map(\.typeName),
                       ["string", "integer", "float", "boolean", "array", "table"])
        XCTAssertEqual(value("nested", in: t)?.array?.last?.array?.first?.string, "a")
        XCTAssertEqual(value("multi", in: t)?.array?.compactMap(\.integer), [1, 2, 3])
        XCTAssertEqual(value("trailing", in: t)?.array?.count, 2)
    }

    func testTablesInlineTablesAndArraysOfTables() {
        let t = parse("""
            point = { x = 1, y = 2 }
            nest = { a.b = 1, c = { d = "e" } }
            empty = {}

            [x.y.z.w]      # implicit x, x.y, x.y.z
            k = 1
            [x]            # defining an implicit super-table afterwards is fine
            top = true

            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]  # a sub-table of a dotted table
            smooth = true

            [[products]]
            name = "Hammer"
            [[products]]
            [[products]]
            name = "Nail"
            [products.dims]
            w = 2
            """)
        XCTAssertEqual(value("point.y", in: t)?.integer, 2)
        XCTAssertEqual(value("nest.a.b", in: t)?.integer, 1)
        XCTAssertEqual(value("nest.c.d", in: t)?.string, "e")
        XCTAssertEqual(value("empty", in: t)?.table?.count, 0)
        XCTAssertEqual(value("x.y.z.w.k", in: t)?.integer, 1)
        XCTAssertEqual(value("x.top", in: t)?.boolean, true)
        XCTAssertEqual(value("fruit.apple.texture.smooth", in: t)?.boolean, true)
        let products = value("products", in: t)?.array
        XCTAssertEqual(products?.count, 3)
        XCTAssertEqual(products?[0].table?["name"]?.value.string, "Hammer")
        XCTAssertEqual(products?[1].table?.count, 0)
        XCTAssertEqual(products?[2].table?["dims"]?.value.table?["w"]?.value.integer, 2)
    }

    func testKeyOrderIsDefinitionOrder() {
        let t = parse("z = 1\n[b]\n[a]\n[c.d]\n[b.x]")
        XCTAssertEqual(t.keys, ["z", "b", "a", "c"])
    }

    // MARK: positions

    func testPositionsOfKeysAndValues() {
        let t = parse("""
            # comment
            name = "x"
              a.b = [ 1,
                "two" ]
            [services.web]
            command = { p = 1 }
            [[arr]]
            "é" = "ü"
            """)
        XCTAssertEqual(t["name"]?.keyLocation, loc(2, 1))
        XCTAssertEqual(t["name"]?.value.location, loc(2, 8))
        XCTAssertEqual(t["a"]?.keyLocation, loc(3, 3))
        let b = t["a"]?.value.table?["b"]
        XCTAssertEqual(b?.keyLocation, loc(3, 5))
        XCTAssertEqual(b?.value.location, loc(3, 9))
        XCTAssertEqual(b?.value.array?[0].location, loc(3, 11))
        XCTAssertEqual(b?.value.array?[1].location, loc(4, 5))
        let services = t["services"]
        XCTAssertEqual(services?.keyLocation, loc(5, 2))
        let web = services?.value.table?["web"]
        XCTAssertEqual(web?.keyLocation, loc(5, 11))
        XCTAssertEqual(web?.value.location, loc(5, 1))
        let command = web?.value.table?["command"]
        XCTAssertEqual(command?.keyLocation, loc(6, 1))
        XCTAssertEqual(command?.value.location, loc(6, 11))
        XCTAssertEqual(command?.value.table?["p"]?.value.location, loc(6, 17))
        let element = t["arr"]?.value.array?.first
        XCTAssertEqual(element?.location, loc(7, 1))
        // columns count characters, not bytes
        XCTAssertEqual(element?.table?["é"]?.keyLocation, loc(8, 1))
        XCTAssertEqual(element?.table?["é"]?.value.location, loc(8, 7))
    }

    func testImplicitTableTakesTheExplicitHeaderPosition() {
        let t = parse("[a.b]\n[a]\n")
        XCTAssertEqual(t["a"]?.keyLocation, loc(2, 2))
        XCTAssertEqual(t["a"]?.value.location, loc(2, 1))
    }

    func testCRLFAndByteOrderMark() {
        let t = parse("\u{FEFF}a = 1\r\nb = 2 # c\r\n")
        XCTAssertEqual(t["a"]?.keyLocation, loc(1, 1))
        XCTAssertEqual(t["b"]?.value.location, loc(2, 5))
    }

    // MARK: invalid documents

    func testInvalidDocuments() {
        let cases: [(toml: String, line: Int, column: Int, message: String)] = [
            ("a = 1\na = 2", 2, 1, #"duplicate key "a" (first defined at 1:1)"#),
            ("a.b = 1\na.b = 2", 2, 3, #"duplicate key "a.b" (first defined at 1:3)"#),
            ("[a]\n[a]", 2, 2, #"cannot define [a]: table "a" was already defined at 1:2"#),
            ("[a]\nb = 1\n[a.b]", 3, 4, #"cannot define [a.b]: key "a.b" is already an integer (defined at 2:1)"#),
            ("[a.b]\n[a]\nb = 1", 3, 1, #"duplicate key "b" (first defined at 1:4)"#),
            ("a = {}\n[a]", 2, 2, #"cannot define [a]: key "a" is already a table (defined at 1:1)"#),
            ("a = {}\n[a.b]", 2, 2, #"cannot define [a.b]: "a" is already a table (defined at 1:1)"#),
            ("a = {b = 1}\na.c = 2", 2, 1, #"cannot add keys to "a" here: it is a table defined at 1:1"#),
            ("[fruit]\napple.color = 'red'\n[fruit.apple]", 3, 8,
             #"cannot define [fruit.apple]: table "fruit.apple" was already defined by dotted keys at 2:1"#),
            ("[a.b.c]\n[a]\nb.c.d = 1", 3, 1, #"cannot add keys to "b" here: it is a table defined at 1:4"#),
            ("a = [1]\n[[a]]", 2, 3, #"cannot define [[a]]: key "a" is already an array (defined at 1:1)"#),
            ("[[a]]\n[a]", 2, 2, #"cannot define [a]: "a" is already an array of tables (defined at 1:3)"#),
            ("[a]\n[[a]]", 2, 3, #"cannot define [[a]]: table "a" was already defined at 1:2"#),
            ("[[a.b]]\n[a]\nb.y = 2", 3, 1, #"cannot add keys to "b" here: it is an array of tables defined at 1:5"#),
            ("a.b = 1\na.b.c = 2", 2, 3, #"cannot add keys to "a.b" here: it is an integer defined at 1:3"#),
            ("a = \"unterminated", 1, 5, #"unterminated string: missing '"'"#),
            ("a = \"abc\ndef\"", 1, 5,
             #"unterminated string: missing '"' before the end of the line (use """ for a multi-line string)"#),
            ("a = 'x\ny'", 1, 5,
             #"unterminated string: missing "'" before the end of the line (use ''' for a multi-line string)"#),
            ("a = \"\"\"abc\n", 1, 5, #"unterminated multi-line string: missing '"""'"#),
            ("a = '''abc", 1, 5, #"unterminated multi-line string: missing "'''""#),
            (#"a = "\x41""#, 1, 6, #"invalid escape sequence \x"#),
            (#"a = "\uD800""#, 1, 6, #"invalid escape \uD800: not a Unicode scalar value"#),
            (#"a = "\u12""#, 1, 6, #"invalid escape: \u needs 4 hex digits"#),
            (#"a = "\U00110000""#, 1, 6, #"invalid escape \U00110000: not a Unicode scalar value"#),
            ("a = \"x\u{01}\"", 1, 7, "control character U+0001 must be escaped in a string"),
            ("a = 1 2", 1, 7, "expected a newline after a value, found '2'"),
            ("[a] b = 1", 1, 5, "expected a newline after a table header, found 'b'"),
            ("a = ", 1, 5, "expected a value, found end of file"),
            ("a =\nb = 1", 1, 4, "expected a value, found end of line"),
            ("a = # c", 1, 5, "expected a value, found end of line"),
            ("a = hello", 1, 5, #"invalid value "hello" (strings need quotes)"#),
            ("a = True", 1, 5, #"invalid value "True" (strings need quotes)"#),
            ("a = truex", 1, 5, #"invalid value "truex" (strings need quotes)"#),
            ("a = 01", 1, 5, #"invalid number "01": leading zeros are not allowed"#),
            ("a = 1__0", 1, 5, #"invalid number "1__0": an underscore must be between two digits"#),
            ("a = 1_", 1, 5, #"invalid number "1_": an underscore must be between two digits"#),
            ("a = _1", 1, 5, #"invalid value "_1" (strings need quotes)"#),
            ("a = 0x", 1, 5, #"invalid number "0x": no digits"#),
            ("a = +0x1", 1, 5, #"invalid number "+0x1": hexadecimal, octal and binary integers cannot have a sign"#),
            ("a = 0o8", 1, 5, #"invalid number "0o8": '8' is not a digit here"#),
            ("a = 0b102", 1, 5, #"invalid number "0b102": '2' is not a digit here"#),
            ("a = 9223372036854775808", 1, 5, #"invalid number "9223372036854775808": out of range for a 64-bit integer"#),
            ("a = -9223372036854775809", 1, 5, #"invalid number "-9223372036854775809": out of range for a 64-bit integer"#),
            ("a = 1.", 1, 5, #"invalid number "1.": expected digits in the fraction"#),
            ("a = .5", 1, 5, #"invalid value ".5" (strings need quotes)"#),
            ("a = 1e", 1, 5, #"invalid number "1e": expected digits in the exponent"#),
            ("a = 03.14", 1, 5, #"invalid number "03.14": leading zeros are not allowed"#),
            ("a = 1.2.3", 1, 5, #"invalid number "1.2.3": unexpected '.'"#),
            ("a = +", 1, 5, #"invalid number "+": no digits"#),
            ("a = 1979-13-01", 1, 5, #"invalid date or time "1979-13-01""#),
            ("a = 2023-02-29", 1, 5, #"invalid date or time "2023-02-29""#),
            ("a = 12:60:00", 1, 5, #"invalid date or time "12:60:00""#),
            ("a = 1979-05-27T07:32", 1, 5, #"invalid date or time "1979-05-27T07:32""#),
            ("a = 1979-05-27T07:32:00+7:00", 1, 5, #"invalid date or time "1979-05-27T07:32:00+7:00""#),
            ("a = [1 2]", 1, 8, "expected ',' or ']' in the array, found '2'"),
            ("a = [1,", 1, 5, "unterminated array: missing ']'"),
            ("a = [,]", 1, 6, "expected a value, found ','"),
            ("a = {b = 1,}", 1, 12, "trailing comma is not allowed in an inline table"),
            ("a = {b = 1\n}", 1, 11, "an inline table must be on one line: missing '}'"),
            ("a = {b = 1 c = 2}", 1, 12, "expected ',' or '}' in the inline table, found 'c'"),
            ("a = {b = 1, b = 2}", 1, 13, #"duplicate key "b" (first defined at 1:6)"#),
            ("a = {", 1, 5, "unterminated inline table: missing '}'"),
            ("[a b]", 1, 4, "expected ']' to close the table header, found 'b'"),
            ("[]", 1, 2, "expected a key, found ']'"),
            ("[[a]", 1, 5, "expected ']]' to close the array of tables header"),
            ("[[a] ]", 1, 5, "expected ']]' to close the array of tables header"),
            ("= 1", 1, 1, "expected a key, found '='"),
            ("a b = 1", 1, 3, #"expected '=' after the key "a", found 'b'"#),
            ("a.= 1", 1, 3, "expected a key, found '='"),
            ("\"\"\"a\"\"\" = 1", 1, 1, "a key cannot be a multi-line string"),
            ("a = 1\n\n  b = = 2", 3, 7, "expected a value, found '='"),
            ("a = 1\r", 1, 6, "carriage return must be followed by a newline"),
            ("a = 1 # bell \u{07}", 1, 14, "control character U+0007 is not allowed in a comment"),
            ("ö = 1", 1, 1, "expected a key, found 'ö' (U+00F6)"),
            ("\u{FEFF}\u{FEFF}a = 1", 1, 1, "expected a key, found '\u{FEFF}' (U+FEFF)"),
            ("a = \"x\\\ny\"", 1, 7, #"a backslash can end a line only in a multi-line string ("""), with nothing but spaces after it"#),
            ("a = \"\"\"x\\ y\"\"\"", 1, 9, #"a backslash can end a line only in a multi-line string ("""), with nothing but spaces after it"#),
            ("a = \"é\" x", 1, 9, "expected a newline after a value, found 'x'"),
        ]
        for c in cases {
            do {
                let t = try TOML.parse(c.toml, file: "t.toml")
                XCTFail("accepted \(c.toml.debugDescription): \(t.keys)")
            } catch {
                XCTAssertEqual(error.description, "t.toml:\(c.line):\(c.column): \(c.message)", c.toml.debugDescription)
            }
        }
    }

    func testInvalidUTF8IsReportedAtTheByte() {
        let bytes: [UInt8] = Array("a = 1\nb = \"x".utf8) + [0xFF] + Array("\"".utf8)
        XCTAssertThrowsError(try TOML.parse(bytes: bytes, file: "t.toml")) { error in
            XCTAssertEqual((error as? ConfigDiagnostic)?.description, "t.toml:2:7: invalid UTF-8")
        }
        XCTAssertEqual(TOML.firstInvalidUTF8Offset(Array("héllo €𝄞".utf8)), nil)
        XCTAssertEqual(TOML.firstInvalidUTF8Offset([0x61, 0xED, 0xA0, 0x80]), 1)  // surrogate
        XCTAssertEqual(TOML.firstInvalidUTF8Offset([0xC0, 0x80]), 0)  // overlong
        XCTAssertEqual(TOML.firstInvalidUTF8Offset([0x61, 0xE2, 0x82]), 1)  // truncated
    }

    func testNestingIsCapped() {
        let deep = TOML.maximumDepth + 10
        let cases = [
            "a = " + String(repeating: "[", count: deep),
            "a = " + String(repeating: "{b = ", count: deep),
            "[" + String(repeating: "a.", count: deep) + "a]",
            String(repeating: "a.", count: deep) + "a = 1",
            "[" + String(repeating: "a.", count: 100) + "a]\n" + String(repeating: "b.", count: 100) + "c = 1",
            "a = " + String(repeating: "[", count: 100_000),
        ]
        for text in cases {
            XCTAssertThrowsError(try TOML.parse(text, file: "t.toml")) { error in
                let message = (error as? ConfigDiagnostic)?.message ?? ""
                XCTAssertTrue(message.contains("\(TOML.maximumDepth)"), message)
            }
        }
        // right at the limit is fine
        let ok = "a = " + String(repeating: "[", count: TOML.maximumDepth - 1)
            + String(repeating: "]", count: TOML.maximumDepth - 1)
        XCTAssertNoThrow(try TOML.parse(ok, file: "t.toml"))
    }

    func testDisplayKey() {
        XCTAssertEqual(TOML.displayKey(["services", "web"]), "services.web")
        XCTAssertEqual(TOML.displayKey(["services", "a.b", "", "x\"y"]), #"services."a.b".""."x\"y""#)
    }
}
