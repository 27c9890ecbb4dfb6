// How ringctl prints: human units, a padded table with colour on a TTY only, and JSON
// (written by hand: ringctl links no Foundation).
import Glibc
import RingmasterCore

enum Format {
    /// 0 → "0", 850 µs → "850us", 1.5 s → "1.5s", 90 s → "1min 30s", 1 d 2 h → "1d 2h".
    static func duration(usec: UInt64) -> String {
        let s = usec / 1_000_000
        if usec < 1_000 { return usec == 0 ? "0" : "\(usec)us" }
        if usec < 1_000_000 { return "\(usec / 1_000)ms" }
        if s < 60 {
            let tenths = (usec % 1_000_000) / 100_000
            return tenths == 0 || s >= 10 ? "\(s)s" : "\(s).\(tenths)s"
        }
        if s < 3600 { return pair(s / 60, "min", s % 60, "s") }
        if s < 86_400 { return pair(s / 3600, "h", (s % 3600) / 60, "min") }
        return pair(s / 86_400, "d", (s % 86_400) / 3600, "h")
    }

    private static func pair(_ a: UInt64, _ ua: String, _ b: UInt64, _ ub: String) -> String {
        b == 0 ? "\(a)\(ua)" : "\(a)\(ua) \(b)\(ub)"
    }

    /// 1536 → "1.5K", 31 MiB → "31.0M" (powers of 1024, as systemctl status shows memory).
    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var value = Double(n)
        var i = 0
        while value >= 1024, i < units.count - 1 { value /= 1024; i += 1 }
        if i == 0 { return "\(n)B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)\(units[i])"
    }

    /// Realtime µs now.
    static func nowUSec() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    /// "2026-11-24 06:01:02.345" in local time.
    static func timestamp(usec: UInt64) -> String {
        var t = time_t(usec / 1_000_000)
        var tm = tm()
        localtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = usec / 1_000 % 1_000
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(msText)"
    }
}

/// ANSI colour, only when stdout is a terminal (and $NO_COLOR is unset, $TERM is not dumb).
enum Colour {
    static let enabled: Bool = {
        guard isatty(1) == 1, getenv("NO_COLOR") == nil else { return false }
        if let term = getenv("TERM").map({ String(cString: $0) }), term == "dumb" { return false }
        return true
    }()

    static func state(_ text: String, state: String) -> String {
        guard enabled else { return text }
        switch state {
        case "running": return "\u{1B}[0;32m" + text + "\u{1B}[0m"
        case "failed": return "\u{1B}[0;1;31m" + text + "\u{1B}[0m"
        case "stopped": return text
        default: return "\u{1B}[0;33m" + text + "\u{1B}[0m"
        }
    }

    static func bold(_ text: String) -> String { enabled ? "\u{1B}[1m" + text + "\u{1B}[0m" : text }
}

/// Columns padded to their widest cell; `colour` may decorate a cell after padding.
struct Table {
    var header: [String]
    var rows: [[String]] = []

    func render(colour: (_ row: Int, _ column: Int, _ padded: String) -> String = { $2 }) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String], _ decorate: (Int, String) -> String) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                let padded = last ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
                out += decorate(i, padded) + (last ? "" : "  ")
            }
            return out
        }
        var out = line(header) { _, s in Colour.bold(s) } + "\n"
        for (r, row) in rows.enumerated() { out += line(row) { c, s in colour(r, c, s) } + "\n" }
        return out
    }
}

/// A JSON value, serialised compactly with keys in the order given.
indirect enum JSON {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    var text: String {
        switch self {
        case let .string(s): return JSON.quote(s)
        case let .int(n): return String(n)
        case let .uint(n): return String(n)
        case let .bool(b): return b ? "true" : "false"
        case .null: return "null"
        case let .array(items): return "[" + items.map(\.text).joined(separator: ",") + "]"
        case let .object(fields): return "{" + fields.map { JSON.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String { TOML.quoted(s) }
}

/// Writes `text` to stdout and flushes (for `events`, line by line through a pipe).
func output(_ text: String) {
    var text = text
    text.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
    fflush(stdout)
}
