// Signal names ⇄ numbers, shared by the config (`stop-signal`), `ringctl kill --signal`
// and log messages. Numbers come from Glibc, so they are right on every Linux architecture.
import Glibc

public enum Signals {
    /// The standard Linux signals, by their name without "SIG", first spelling canonical.
    public static let table: [(name: String, number: Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("IOT", SIGIOT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL),
        ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM),
        ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT), ("CHLD", SIGCHLD), ("CLD", SIGCHLD), ("CONT", SIGCONT),
        ("STOP", SIGSTOP), ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG),
        ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF),
        ("WINCH", SIGWINCH), ("IO", SIGIO), ("POLL", SIGPOLL), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// The real-time signal range as glibc sees it (usually 34...64).
    public static var realtimeMinimum: Int32 { __libc_current_sigrtmin() }
    public static var realtimeMaximum: Int32 { __libc_current_sigrtmax() }

    /// "TERM", "SIGTERM", "term", "sigterm", "15", "RTMIN", "RTMIN+3", "SIGRTMAX-1" → number;
    /// nil for anything else (including 0 and numbers beyond RTMAX).
    public static func number(named text: String) -> Int32? {
        var name = text.uppercased()
        if let n = Int32(name) { return (1...realtimeMaximum).contains(n) ? n : nil }
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let entry = table.first(where: { $0.name == name }) { return entry.number }
        return realtimeNumber(name)
    }

    /// 15 → "TERM"; real-time signals as "RTMIN+n"; nil for numbers that are not signals.
    public static func name(of number: Int32) -> String? {
        if let entry = table.first(where: { $0.number == number }) { return entry.name }
        let lo = realtimeMinimum, hi = realtimeMaximum
        guard number >= lo && number <= hi else { return nil }
        if number == lo { return "RTMIN" }
        if number == hi { return "RTMAX" }
        return "RTMIN+\(number - lo)"
    }

    /// 15 → "SIGTERM", 40 → "SIGRTMIN+6", 99 → "signal 99".
    public static func description(of number: Int32) -> String {
        name(of: number).map { "SIG" + $0 } ?? "signal \(number)"
    }

    /// The error for a name `number(named:)` rejected:
    /// `bad signal name "TREM"; did you mean "TERM"?`
    public static func unknownNameMessage(_ text: String) -> String {
        var message = "bad signal name \"\(text)\""
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let guess = closestMatch(to: name, among: table.map(\.name)) {
            message += "; did you mean \"\(guess)\"?"
        }
        return message
    }

    /// "RTMIN", "RTMIN+n", "RTMAX", "RTMAX-n", within the real-time range.
    private static func realtimeNumber(_ name: String) -> Int32? {
        let lo = realtimeMinimum, hi = realtimeMaximum
        let base: Int32, rest: Substring, sign: Int32
        if name.hasPrefix("RTMIN") {
            base = lo; rest = name.dropFirst(5); sign = 1
        } else if name.hasPrefix("RTMAX") {
            base = hi; rest = name.dropFirst(5); sign = -1
        } else {
            return nil
        }
        if rest.isEmpty { return base }
        let expectedSign: Character = sign > 0 ? "+" : "-"
        let digits = rest.dropFirst()
        guard rest.first == expectedSign, !digits.isEmpty, digits.count <= 3, digits.allSatisfy(\.isASCII),
              digits.allSatisfy(\.isNumber), let offset = Int32(digits), offset <= hi - lo else {
            return nil
        }
        return base + sign * offset
    }
}
