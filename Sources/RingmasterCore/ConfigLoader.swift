// Reading ringmaster.toml and conf.d/*.toml, merging them, validating the result.
// No Foundation: files are read with Glibc open/read/opendir/readdir.
//
// Merge rule (docs/config.md): files are applied in order, the main file first, then
// conf.d/*.toml sorted by name (byte order). For each [services.X] / [sockets.X] table
// a later file defines, a table of that name that already exists gets the later file's
// keys, each replacing the same key whole (so `environment` or `start-limit` is replaced,
// not merged key by key); a new table is added after the existing ones. Any other
// top-level key is replaced whole by a later file. Validation runs on the merged result,
// and every diagnostic names the file that wrote the key or value at fault.
import Glibc

public enum ConfigLoader {

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

    /// The main file plus `conf.d/*.toml` beside it, merged, validated. A file that cannot
    /// be read is a diagnostic at `file:1:1` saying why; a missing conf.d is fine.
    public static func load(mainFile: String) throws(ConfigErrors) -> Config {
        var files = [mainFile]
        var diagnostics: [ConfigDiagnostic] = []
        switch listTOMLFiles(in: confDirectory(forMainFile: mainFile)) {
        case let .success(names): files += names
        case let .failure(problem): diagnostics.append(problem)
        }
        var documents: [TOMLTable] = []
        for file in files {
            switch readFile(file) {
            case let .success(bytes):
                do {
                    documents.append(try TOML.parse(bytes: bytes, file: file))
                } catch {
                    diagnostics.append(error)
                }
            case let .failure(problem):
                diagnostics.append(problem)
            }
        }
        if !diagnostics.isEmpty { throw ConfigErrors(sorted(diagnostics, files: files)) }
        let home = getenv("HOME").map { String(cString: $0) }
        return try validate(merge(documents), files: files, externalFiles: ExternalFiles(home: home, read: readEnvFile))
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

    /// The same, from this process's environment (HOME from the password database if unset).
    public static func defaultConfigPath() -> String {
        var environment: [String: String] = [:]
        if let x = getenv("XDG_CONFIG_HOME") { environment["XDG_CONFIG_HOME"] = String(cString: x) }
        if let h = getenv("HOME"), h.pointee != 0 {
            environment["HOME"] = String(cString: h)
        } else if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir {
            environment["HOME"] = String(cString: dir)
        }
        return defaultConfigPath(environment: environment)
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

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func readFile(_ path: String) -> Result<[UInt8], ConfigDiagnostic> {
        let at = SourceLocation(file: path, line: 1, column: 1)
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return .failure(ConfigDiagnostic(at, "cannot open the file: \(errnoText())")) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ConfigDiagnostic(at, "cannot read the file: \(errnoText())"))
            }
            if n == 0 { return .success(bytes) }
            bytes.append(contentsOf: buffer[0..<n])
        }
    }

    /// An env file's bytes: a regular file (opened without blocking, so a FIFO cannot hang
    /// the load) of at most EnvFile.maximumSize bytes.
    @Sendable static func readEnvFile(_ path: String) -> Result<[UInt8], FileReadFailure> {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return .failure(FileReadFailure(missing: errno == ENOENT || errno == ENOTDIR,
                                                                    message: "cannot open the file: \(errnoText())")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(FileReadFailure(missing: false, message: "cannot read the file: \(errnoText())")) }
        guard st.st_mode & S_IFMT == S_IFREG else { return .failure(FileReadFailure(missing: false, message: "not a regular file")) }
        let tooLarge = FileReadFailure(missing: false, message: "larger than \(EnvFile.maximumSize >> 20) MiB")
        guard st.st_size <= EnvFile.maximumSize else { return .failure(tooLarge) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= EnvFile.maximumSize {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(FileReadFailure(missing: false, message: "cannot read the file: \(errnoText())")) }
            if n == 0 { return .success(bytes) }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return .failure(tooLarge)
    }

    /// `*.toml` in `directory` (not dot files), sorted by name in byte order; a missing
    /// directory is empty.
    private static func listTOMLFiles(in directory: String) -> Result<[String], ConfigDiagnostic> {
        guard let dir = opendir(directory) else {
            if errno == ENOENT { return .success([]) }
            return .failure(ConfigDiagnostic(SourceLocation(file: directory, line: 1, column: 1),
                                             "cannot read the directory: \(errnoText())"))
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name.first == UInt8(ascii: ".") || !name.reversed().starts(with: Array(".toml".utf8).reversed()) {
                continue
            }
            names.append(name)
        }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return .success(names.map { directory + "/" + String(decoding: $0, as: UTF8.self) })
    }
}
