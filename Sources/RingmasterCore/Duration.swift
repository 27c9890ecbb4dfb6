// Durations as written in ringmaster.toml: "100ms", "10s", "1.5s", "2min", "1h 30min".
//
// Grammar (see docs/config.md):
//   duration  = "0" | component { [spaces] component }
//   component = digits [ "." digits ] [spaces] unit
//   unit      = "ms" | "s" | "min" | "h"        ("us", microseconds, is also accepted)
// Components add up ("1h 30min" = 5400s). Units are lower case. A bare number other than
// "0" is rejected: "10" could mean seconds or milliseconds, so the file must say which.
// Fractions are exact down to the microsecond; anything finer is truncated.

public struct DurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum Durations {
    /// Units by their spelling, in microseconds.
    static let units: [(name: String, usec: USec)] = [
        ("us", 1),
        ("ms", USec.perMillisecond),
        ("s", USec.perSecond),
        ("min", 60 * USec.perSecond),
        ("h", 3600 * USec.perSecond),
    ]

    /// Parses a duration into microseconds; errors read
    /// `bad duration "10 sec": expected a number followed by ms, s, min or h`.
    public static func parse(_ text: String) throws(DurationError) -> USec {
        let syntax = DurationError("bad duration \"\(text)\": expected a number followed by ms, s, min or h")
        let tooLarge = DurationError("bad duration \"\(text)\": too large")
        let b = Array(text.utf8)
        var i = 0
        func skipSpaces() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 } }

        skipSpaces()
        var end = b.count
        while end > i, b[end - 1] == 0x20 || b[end - 1] == 0x09 { end -= 1 }
        if end - i == 1 && b[i] == UInt8(ascii: "0") { return 0 }

        var total: USec = 0
        var components = 0
        while true {
            skipSpaces()
            if i >= b.count { break }
            // digits [. digits]
            var whole: USec = 0
            let wholeStart = i
            while i < b.count, isDecimalDigit(b[i]) {
                let (m, o1) = whole.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(USec(b[i] - 0x30))
                if o1 || o2 { throw tooLarge }
                whole = s
                i += 1
            }
            if i == wholeStart { throw syntax }
            // the first 9 fraction digits, as billionths
            var billionths: USec = 0
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                let fractionStart = i
                var scale: USec = 100_000_000
                while i < b.count, isDecimalDigit(b[i]) {
                    billionths += USec(b[i] - 0x30) * scale
                    scale /= 10
                    i += 1
                }
                if i == fractionStart { throw syntax }
            }
            skipSpaces()
            let unitStart = i
            while i < b.count, (b[i] >= UInt8(ascii: "a") && b[i] <= UInt8(ascii: "z")) { i += 1 }
            let unitName = String(decoding: b[unitStart..<i], as: UTF8.self)
            guard let unit = units.first(where: { $0.name == unitName })?.usec else { throw syntax }
            let (wholeUSec, o1) = whole.multipliedReportingOverflow(by: unit)
            let fractionUSec = billionths * unit / 1_000_000_000  // < 1e9 * 3.6e9: no overflow
            let (component, o2) = wholeUSec.addingReportingOverflow(fractionUSec)
            let (sum, o3) = total.addingReportingOverflow(component)
            if o1 || o2 || o3 { throw tooLarge }
            total = sum
            components += 1
        }
        if components == 0 { throw syntax }
        return total
    }
}

@inline(__always)
private func isDecimalDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
