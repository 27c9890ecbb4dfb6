// Parsing ringmaster.toml and conf.d/*.toml from their bytes, merging them, validating the
// result. Pure: reading the files (open, fstat, readdir, getenv, getpwuid) is the ConfigFiles
// target's (`ConfigLoader.load(mainFile:)`), which both executables use.
//
// Merge rule (docs/config.md): files are applied in order, the main file first, then
// conf.d/*.toml sorted by name (byte order). For each [services.X] / [sockets.X] table
// a later file defines, a table of that name that already exists gets the later file's
// keys, each replacing the same key whole (so `environment` or `start-limit` is replaced,
// not merged key by key); a new table is added after the existing ones. Any other
// top-level key is replaced whole by a later file. Validation runs on the merged result,
// and every diagnostic names the file that wrote the key or value at fault.
public enum ConfigLoader {

    /// One file, no conf.d.
    /// One file, no conf.d; env files from `externalFiles` (none by default: no I/O).
    public static func parse(text: String, file: String, externalFiles: ExternalFiles = .none) throws(ConfigErrors) -> Config {
        try parse(sources: [(file: file, text: text)], externalFiles: externalFiles)
    }

    /// Several files' texts, merged in the order given (as `load` does with conf.d).
    public static func parse(sources: [(file: String, text: String)],
                             externalFiles: ExternalFiles = .none) throws(ConfigErrors) -> Config {
        var documents: [TOMLTable] = []
        var diagnostics: [ConfigDiagnostic] = []
        for source in sources {
            do {
                documents.append(try TOML.parse(source.text, file: source.file))
            } catch {
                diagnostics.append(error)
            }
        }
        let files = sources.map(\.file)
        if !diagnostics.isEmpty { throw ConfigErrors(sorted(diagnostics, files: files)) }
        return try validate(merge(documents), files: files, externalFiles: externalFiles)
    }

    /// What the files said, in merge order (the main file first): each file's bytes, or why it
    /// could not be read; `problems`: other reading problems (conf.d unreadable). Parsed,
    /// merged, validated; every problem of every file in one `ConfigErrors`.
    public static func parse(read: [(file: String, contents: Result<[UInt8], ConfigDiagnostic>)],
                             problems: [ConfigDiagnostic] = [],
                             externalFiles: ExternalFiles = .none) throws(ConfigErrors) -> Config {
        let files = read.map(\.file)
        var diagnostics = problems
        var documents: [TOMLTable] = []
        for source in read {
            switch source.contents {
            case let .success(bytes):
                do {
                    documents.append(try TOML.parse(bytes: bytes, file: source.file))
                } catch {
                    diagnostics.append(error)
                }
            case let .failure(problem):
                diagnostics.append(problem)
            }
        }
        if !diagnostics.isEmpty { throw ConfigErrors(sorted(diagnostics, files: files)) }
        return try validate(merge(documents), files: files, externalFiles: externalFiles)
    }

    /// Validates a parsed (merged) document; `files` orders the diagnostics and becomes
    /// `Config.files`; env files are read through `externalFiles`.
    public static func validate(_ document: TOMLTable, files: [String],
                                externalFiles: ExternalFiles = .none) throws(ConfigErrors) -> Config {
        var validator = ConfigValidator(externalFiles: externalFiles)
        var config = validator.validate(document)
        if !validator.diagnostics.isEmpty { throw ConfigErrors(sorted(validator.diagnostics, files: files)) }
        config.files = files
        return config
    }

    /// Applies each document over the previous ones (see the merge rule at the top of this file).
    public static func merge(_ documents: [TOMLTable]) -> TOMLTable {
        guard var merged = documents.first else { return TOMLTable() }
        for document in documents.dropFirst() {
            for entry in document.entries {
                guard ConfigValidator.topLevelKeys.contains(entry.key),
                      let existing = merged[entry.key], var base = existing.value.table,
                      let additions = entry.value.table else {
                    merged.set(entry)
                    continue
                }
                for item in additions.entries {
                    if let old = base[item.key], var oldTable = old.value.table, let newTable = item.value.table {
                        for kv in newTable.entries { oldTable.set(kv) }
                        base.set(TOMLEntry(key: item.key, keyLocation: old.keyLocation,
                                           value: TOMLValue(.table(oldTable), at: old.value.location)))
                    } else {
                        base.set(item)
                    }
                }
                merged.set(TOMLEntry(key: entry.key, keyLocation: existing.keyLocation,
                                     value: TOMLValue(.table(base), at: existing.value.location)))
            }
        }
        return merged
    }

    /// `conf.d` in the main file's directory.
    public static func confDirectory(forMainFile mainFile: String) -> String {
        guard let slash = mainFile.lastIndex(of: "/") else { return "conf.d" }
        return String(mainFile[...slash]) + "conf.d"
    }

    /// `$XDG_CONFIG_HOME/ringmaster/ringmaster.toml` if XDG_CONFIG_HOME is an absolute path
    /// (the XDG spec ignores relative ones), else `$HOME/.config/ringmaster/ringmaster.toml`.
    public static func defaultConfigPath(environment: [String: String]) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") {
            let base = withoutTrailingSlashes(xdg)
            return (base == "/" ? "" : base) + "/ringmaster/ringmaster.toml"
        }
        let suffix = "/.config/ringmaster/ringmaster.toml"
        switch withoutTrailingSlashes(environment["HOME"] ?? "") {
        case "": return "~" + suffix  // no home known: shown as is, so the error says what is missing
        case "/": return suffix
        case let home: return home + suffix
        }
    }

    /// Why `name` is not a valid service or socket name, or nil if it is:
    /// `[A-Za-z0-9_.-]`, 1 to 64 characters, not starting with '.' or '-'.
    public static func nameProblem(_ name: String) -> String? {
        guard let first = name.utf8.first else { return "a name must not be empty" }
        if name.utf8.count > 64 { return "a name can have at most 64 characters" }
        if first == UInt8(ascii: ".") || first == UInt8(ascii: "-") { return "a name must not start with '.' or '-'" }
        let allowed = name.utf8.allSatisfy { isBareKeyByte($0) || $0 == UInt8(ascii: ".") }
        return allowed ? nil : "a name may contain only A-Z, a-z, 0-9, '_', '.' and '-'"
    }

    // MARK: private

    /// By file (in merge order), then line, then column; duplicates dropped.
    static func sorted(_ diagnostics: [ConfigDiagnostic], files: [String]) -> [ConfigDiagnostic] {
        var order: [String: Int] = [:]
        for (i, f) in files.enumerated() where order[f] == nil { order[f] = i }
        let keyed = diagnostics.enumerated().map { (i, d) in
            (file: order[d.location.file] ?? files.count, line: d.location.line, column: d.location.column, i: i, d: d)
        }
        let ordered = keyed.sorted { a, b in
            (a.file, a.line, a.column, a.i) < (b.file, b.line, b.column, b.i)
        }
        var out: [ConfigDiagnostic] = []
        var samePlace: [ConfigDiagnostic] = []  // those already kept at the current location
        for k in ordered {
            if samePlace.first?.location != k.d.location { samePlace = [] }
            if samePlace.contains(k.d) { continue }
            samePlace.append(k.d)
            out.append(k.d)
        }
        return out
    }

    private static func withoutTrailingSlashes(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return String(p)
    }
}
