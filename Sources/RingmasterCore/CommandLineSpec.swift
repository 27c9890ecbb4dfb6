// A small declarative command-line parser and help writer for ringctl: subcommands with
// positional arguments, flags and options (`-n 5`, `-n5`, `--lines 5`, `--lines=5`, `--`).
// ringctl used swift-argument-parser before; it pulled FoundationEssentials into a tool whose
// whole job is to start, ask, print and exit in about a millisecond.

/// One subcommand (or the top-level command): what it takes and how `--help` describes it.
public struct CommandSpec: Sendable {
    public struct Positional: Sendable {
        public enum Count: Sendable { case one, optional, any, atLeastOne }
        public var name: String
        public var help: String
        public var count: Count

        public init(_ name: String, _ count: Count = .one, help: String) {
            self.name = name
            self.help = help
            self.count = count
        }
    }

    public struct Option: Sendable {
        public var long: String
        public var short: Character?
        /// The value's name in help (`<signal>`); nil for a flag.
        public var value: String?
        public var help: String
        /// Shown in the usage line. False for what asks about ringctl rather than tells the
        /// command something (`--version`, like `--help`): OPTIONS still lists it.
        public var inUsage: Bool

        public init(_ long: String, short: Character? = nil, value: String? = nil, help: String, inUsage: Bool = true) {
            self.long = long
            self.short = short
            self.value = value
            self.help = help
            self.inUsage = inUsage
        }
    }

    public var name: String
    public var abstract: String
    public var discussion: String
    public var arguments: [Positional]
    public var options: [Option]

    public init(_ name: String, abstract: String, discussion: String = "",
                arguments: [Positional] = [], options: [Option] = []) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.arguments = arguments
        self.options = options
    }
}

/// What the command line said: positionals by argument name, option values and flags by
/// long name.
public struct ParsedArguments: Equatable, Sendable {
    public var positionals: [String: [String]] = [:]
    public var values: [String: String] = [:]
    public var flags: Set<String> = []

    public init() {}

    public func one(_ name: String) -> String? { positionals[name]?.first }
    public func all(_ name: String) -> [String] { positionals[name] ?? [] }
    public func flag(_ long: String) -> Bool { flags.contains(long) }
}

/// A command line that does not fit the command: the message, and the command it was for.
public struct UsageError: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

extension CommandSpec {
    /// Parses `args` (after the subcommand's name). nil: help was asked for (`-h`/`--help`).
    public func parse(_ args: [String]) throws(UsageError) -> ParsedArguments? {
        var parsed = ParsedArguments()
        var loose: [String] = []
        var i = 0
        var onlyPositionals = false
        while i < args.count {
            let arg = args[i]
            i += 1
            if onlyPositionals || arg == "-" || !arg.hasPrefix("-") {
                loose.append(arg)
                continue
            }
            if arg == "--" { onlyPositionals = true; continue }
            if arg == "-h" || arg == "--help" { return nil }
            // "--name", "--name=value", "-x", "-xVALUE"
            var name: Substring
            var attached: String?
            let option: Option?
            if arg.hasPrefix("--") {
                name = arg.dropFirst(2)
                if let eq = name.firstIndex(of: "=") {
                    attached = String(name[name.index(after: eq)...])
                    name = name[..<eq]
                }
                option = options.first { $0.long == name }
            } else {
                let letter = arg.dropFirst().first!
                option = options.first { $0.short == letter }
                name = Substring(String(letter))
                if arg.count > 2 { attached = String(arg.dropFirst(2)) }
            }
            guard let option else { throw UsageError("unknown option '\(arg.hasPrefix("--") ? "--" + name : "-" + name)'") }
            if option.value == nil {
                guard attached == nil else { throw UsageError("'--\(option.long)' takes no value") }
                parsed.flags.insert(option.long)
                continue
            }
            if attached == nil {
                guard i < args.count else { throw UsageError("missing value for '--\(option.long) <\(option.value!)>'") }
                attached = args[i]
                i += 1
            }
            guard parsed.values[option.long] == nil else { throw UsageError("'--\(option.long)' given twice") }
            parsed.values[option.long] = attached
        }
        for (n, argument) in arguments.enumerated() {
            switch argument.count {
            case .one:
                guard !loose.isEmpty else { throw UsageError("missing \(placeholder(argument))") }
                parsed.positionals[argument.name] = [loose.removeFirst()]
            case .optional:
                if !loose.isEmpty { parsed.positionals[argument.name] = [loose.removeFirst()] }
            case .any, .atLeastOne:
                // Takes what the arguments after it do not need.
                let later = arguments[(n + 1)...].filter { $0.count == .one }.count
                let take = max(loose.count - later, 0)
                if argument.count == .atLeastOne, take == 0 { throw UsageError("missing \(placeholder(argument))") }
                parsed.positionals[argument.name] = Array(loose.prefix(take))
                loose.removeFirst(take)
            }
        }
        if let extra = loose.first { throw UsageError("unexpected argument '\(extra)'") }
        return parsed
    }

    private func placeholder(_ argument: Positional) -> String {
        switch argument.count {
        case .one, .optional: return "<\(argument.name)>"
        case .any, .atLeastOne: return "<\(argument.name)> ..."
        }
    }

    /// "ringctl kill <name> [--signal <signal>]"
    public func usage(prefix: String) -> String {
        var parts = [prefix, name].filter { !$0.isEmpty }
        for a in arguments {
            switch a.count {
            case .one: parts.append("<\(a.name)>")
            case .optional: parts.append("[<\(a.name)>]")
            case .any: parts.append("[<\(a.name)> ...]")
            case .atLeastOne: parts.append("<\(a.name)> ...")
            }
        }
        for o in options where o.inUsage { parts.append("[--\(o.long)" + (o.value.map { " <\($0)>" } ?? "") + "]") }
        return parts.joined(separator: " ")
    }

    /// The text `--help` prints, wrapped at `width` columns.
    public func help(prefix: String, subcommands: [CommandSpec] = [], width: Int = 80) -> String {
        var out = "OVERVIEW: " + abstract + "\n\n"
        if !discussion.isEmpty { out += Self.wrap(discussion, width: width, indent: 0) + "\n\n" }
        out += "USAGE: " + (subcommands.isEmpty ? usage(prefix: prefix) : "\(prefix) <subcommand>") + "\n\n"
        func section(_ title: String, _ rows: [(String, String)]) {
            guard !rows.isEmpty else { return }
            out += title + ":\n"
            for (left, text) in rows {
                let head = "  " + left
                let body = Self.wrap(text, width: width, indent: 26)
                let firstBody = body.drop { $0 == " " }
                if head.count < 25 {
                    out += head + String(repeating: " ", count: 26 - head.count) + firstBody + "\n"
                } else {
                    out += head + "\n" + body + "\n"
                }
            }
            out += "\n"
        }
        section("ARGUMENTS", arguments.map { ("<\($0.name)>", $0.help) })
        let help = Option("help", short: "h", help: "Show help information.")
        section("OPTIONS", (options + [help]).map { o in
            ((o.short.map { "-\($0), " } ?? "") + "--" + o.long + (o.value.map { " <\($0)>" } ?? ""), o.help)
        })
        section("SUBCOMMANDS", subcommands.map { ($0.name, $0.abstract) })
        if !subcommands.isEmpty { out += "  See '\(prefix) help <subcommand>' for detailed help.\n" }
        while out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }

    /// Words of `text` in lines of at most `width` columns, each indented by `indent`.
    static func wrap(_ text: String, width: Int, indent: Int) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if !line.isEmpty, indent + line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        let pad = String(repeating: " ", count: indent)
        return lines.map { pad + $0 }.joined(separator: "\n")
    }
}
