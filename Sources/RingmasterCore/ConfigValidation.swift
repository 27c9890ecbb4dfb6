// From a parsed (and merged) TOML document to a Config. Collects every problem with its
// position instead of stopping at the first; ConfigLoader sorts and throws them.
// Service keys are decoded in ConfigServiceKeys.swift; the listen grammar is in
// ListenAddressParser.swift.

struct ConfigValidator {
    private(set) var diagnostics: [ConfigDiagnostic] = []
    /// where env files are read from (ConfigLoader.load: the disk)
    var externalFiles: ExternalFiles = .none

    /// What the cross-checks need to know about a service, with positions.
    struct ServiceReferences {
        var name: String
        var sockets: [(name: String, location: SourceLocation)] = []
        var after: [(name: String, location: SourceLocation)] = []
        /// the strings placeholders may appear in (each argv string or the shell script,
        /// `environment` values, `working-directory`), as written
        var placeholderStrings: [TOMLValue] = []
    }

    static let topLevelKeys = ["sockets", "services"]
    static let socketKeys = ["listen", "systemd", "mode"]

    mutating func error(_ location: SourceLocation, _ message: String) {
        // One problem, one line (`file:line:column: message`): line breaks and other control
        // characters in a quoted value are shown escaped, as TOML would write them.
        diagnostics.append(ConfigDiagnostic(location, TOML.escaped(message, quotes: false)))
    }

    mutating func validate(_ document: TOMLTable) -> Config {
        var config = Config()
        var declaredSockets: [String] = []
        var references: [ServiceReferences] = []

        for entry in document.entries {
            switch entry.key {
            case "sockets":
                guard let table = requireTable(entry.value, "sockets") else { continue }
                for socketEntry in table.entries {
                    declaredSockets.append(socketEntry.key)
                    if let socket = socket(socketEntry) { config.sockets.append(socket) }
                }
            case "services":
                guard let table = requireTable(entry.value, "services") else { continue }
                for serviceEntry in table.entries {
                    var refs = ServiceReferences(name: serviceEntry.key)
                    if let service = service(serviceEntry, references: &refs) { config.services.append(service) }
                    references.append(refs)
                }
            default:
                unknownKey(entry, in: "at the top level", known: Self.topLevelKeys)
            }
        }

        checkReferences(references, declaredSockets: declaredSockets)
        checkCycles(references)
        return config
    }

    // MARK: sockets

    private mutating func socket(_ entry: TOMLEntry) -> SocketConfig? {
        let name = entry.key
        let context = "[sockets.\(TOML.quotedKeyIfNeeded(name))]"
        checkName(name, kind: "socket", at: entry.keyLocation)
        guard let table = entry.value.table else {
            error(entry.value.location, "socket \"\(name)\" must be a table, not \(entry.value.typeNameWithArticle)")
            return nil
        }
        var source: SocketConfig.Source?
        var sourceKey: TOMLEntry?
        var modeKey: TOMLEntry?
        var valid = true
        for e in table.entries {
            switch e.key {
            case "listen", "systemd":
                if let first = sourceKey {
                    error(e.keyLocation, "\(context) has both listen and systemd (\(first.key) is at "
                          + "\(first.keyLocation.line):\(first.keyLocation.column)); use one")
                    valid = false
                    continue
                }
                sourceKey = e
                guard let text = string(e.value, e.key) else { valid = false; continue }
                if e.key == "listen" {
                    switch ListenAddressParser.parse(text) {
                    case let .success(address): source = .listen(address)
                    case let .failure(problem): error(e.value.location, problem.message); valid = false
                    }
                } else if let problem = Self.systemdNameProblem(text) {
                    error(e.value.location, "bad systemd socket name \"\(text)\": \(problem)"); valid = false
                } else {
                    source = .systemd(name: text)
                }
            case "mode":
                modeKey = e
            default:
                unknownKey(e, in: "in \(context)", known: Self.socketKeys)
            }
        }
        if sourceKey == nil {
            error(entry.keyLocation, "\(context) needs listen = \"…\" or systemd = \"…\"")
        }
        let mode = modeKey.flatMap { socketMode($0, source: source) }
        guard valid, modeKey == nil || mode != nil, let source else { return nil }
        return SocketConfig(name: name, source: source, mode: mode)
    }

    /// `mode = "0660"`: octal permission bits (at most 0777) of a `listen = "/path"` socket.
    private mutating func socketMode(_ e: TOMLEntry, source: SocketConfig.Source?) -> UInt32? {
        guard let text = string(e.value, e.key) else { return nil }
        guard case .listen(.unix) = source else {
            error(e.keyLocation, "mode applies only to a unix socket at a path (listen = \"/…\")")
            return nil
        }
        guard (3...4).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }), let bits = UInt32(text, radix: 8), bits <= 0o777 else {
            error(e.value.location, "mode must be octal permission bits such as \"0600\" or \"0660\" (at most 0777), not \"\(text)\"")
            return nil
        }
        return bits
    }

    /// FileDescriptorName= rules: 1-255 printable ASCII characters, no ':'.
    static func systemdNameProblem(_ name: String) -> String? {
        let ok = !name.isEmpty && name.utf8.count <= 255 && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x3A }
        return ok ? nil : "FileDescriptorName= is 1-255 printable ASCII characters, without ':' or spaces"
    }

    // MARK: cross-checks

    private mutating func checkReferences(_ services: [ServiceReferences], declaredSockets: [String]) {
        let socketSet = Set(declaredSockets)
        let serviceNames = services.map(\.name)
        let serviceSet = Set(serviceNames)
        for service in services {
            var seenSockets = Set<String>()
            for (name, location) in service.sockets {
                if !seenSockets.insert(name).inserted {
                    error(location, "socket \"\(name)\" is listed twice")
                } else if !socketSet.contains(name) {
                    error(location, "unknown socket \"\(name)\"" + Self.suggestion(name, among: declaredSockets))
                }
            }
            let listed = Set(service.sockets.map(\.name))
            for value in service.placeholderStrings {
                for match in Placeholders.scan(value.string ?? "") {
                    let at = value.location(ofByte: match.range.lowerBound)
                    switch match.result {
                    case let .failure(problem):
                        error(at, problem.message)
                    case let .success(.socket(name)) where !listed.contains(name):
                        error(at, "placeholder \(EnvFile.bounded(match.text)) names socket \"\(name)\", "
                              + "which is not in this service's sockets")
                    case .success:
                        break
                    }
                }
            }
            var seenAfter = Set<String>()
            for (name, location) in service.after {
                if !seenAfter.insert(name).inserted {
                    error(location, "\"\(name)\" is listed twice in after")
                } else if !serviceSet.contains(name) {
                    error(location, "unknown service \"\(name)\" in after"
                          + Self.suggestion(name, among: serviceNames))
                }
            }
        }
    }

    /// Depth-first over `after` edges (iterative: chains may be thousands long). Each back
    /// edge closes a cycle, reported at the `after` entry that closes it.
    private mutating func checkCycles(_ services: [ServiceReferences]) {
        var index: [String: Int] = [:]
        for (i, s) in services.enumerated() where index[s.name] == nil { index[s.name] = i }
        let edges: [[(target: Int, location: SourceLocation)]] = services.map { s in
            var seen = Set<String>()
            return s.after.compactMap { dep in
                guard seen.insert(dep.name).inserted, let t = index[dep.name] else { return nil }
                return (t, dep.location)
            }
        }
        enum Color { case white, gray, black }
        var color = [Color](repeating: .white, count: services.count)
        for root in services.indices where color[root] == .white {
            var stack: [(node: Int, next: Int)] = [(root, 0)]
            color[root] = .gray
            while let top = stack.last {
                guard top.next < edges[top.node].count else {
                    color[top.node] = .black
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].next += 1
                let edge = edges[top.node][top.next]
                switch color[edge.target] {
                case .white:
                    color[edge.target] = .gray
                    stack.append((edge.target, 0))
                case .gray:
                    let from = stack.lastIndex { $0.node == edge.target } ?? 0
                    let names = stack[from...].map { services[$0.node].name } + [services[edge.target].name]
                    error(edge.location, "dependency cycle: " + names.joined(separator: " -> "))
                case .black:
                    break
                }
            }
        }
    }

    // MARK: helpers shared with ConfigServiceKeys.swift

    mutating func unknownKey(_ entry: TOMLEntry, in context: String, known: [String]) {
        error(entry.keyLocation, "unknown key \"\(entry.key)\" \(context)" + Self.suggestion(entry.key, among: known))
    }

    /// `; did you mean "restart"?` when a candidate is close enough, else "".
    static func suggestion(_ word: String, among candidates: [String]) -> String {
        closestMatch(to: word, among: candidates).map { "; did you mean \"\($0)\"?" } ?? ""
    }

    mutating func checkName(_ name: String, kind: String, at location: SourceLocation) {
        if let problem = ConfigLoader.nameProblem(name) {
            error(location, "invalid \(kind) name \"\(name)\": \(problem)")
        }
    }

    mutating func requireTable(_ value: TOMLValue, _ what: String) -> TOMLTable? {
        if let t = value.table { return t }
        error(value.location, "\(what) must be a table, not \(value.typeNameWithArticle)")
        return nil
    }

    mutating func string(_ value: TOMLValue, _ what: String, _ expected: String = "a string") -> String? {
        guard let s = value.string else {
            error(value.location, "\(what) must be \(expected), not \(value.typeNameWithArticle)")
            return nil
        }
        if s.utf8.contains(0) {
            error(value.location, "\(what) must not contain a NUL character")
            return nil
        }
        return s
    }

    mutating func boolean(_ value: TOMLValue, _ what: String) -> Bool? {
        if let b = value.boolean { return b }
        error(value.location, "\(what) must be true or false, not \(value.typeNameWithArticle)")
        return nil
    }

    mutating func duration(_ value: TOMLValue, _ what: String) -> USec? {
        guard let text = string(value, what, "a string duration") else { return nil }
        do {
            return try Durations.parse(text)
        } catch {
            self.error(value.location, error.message)
            return nil
        }
    }

    /// An array of strings, each with its position (element errors at the element).
    mutating func stringArray(_ value: TOMLValue, _ what: String) -> [(name: String, location: SourceLocation)]? {
        guard let items = value.array else {
            error(value.location, "\(what) must be an array of strings, not \(value.typeNameWithArticle)")
            return nil
        }
        var out: [(name: String, location: SourceLocation)] = []
        var ok = true
        for (i, item) in items.enumerated() {
            if let s = string(item, "\(what)[\(i)]") { out.append((s, item.location)) } else { ok = false }
        }
        return ok ? out : nil
    }
}

/// The candidate nearest to `word` by edit distance (a transposition counts as one edit),
/// if it is at most 2 edits away and closer than retyping the word; ties go to the first.
func closestMatch(to word: String, among candidates: [String]) -> String? {
    let a = Array(word.lowercased().unicodeScalars)
    guard !a.isEmpty, a.count <= 64 else { return nil }
    var best: (name: String, distance: Int)?
    for candidate in candidates {
        let b = Array(candidate.lowercased().unicodeScalars)
        if abs(a.count - b.count) > 2 { continue }
        let d = editDistance(a, b)
        if d <= 2, d < a.count, d < (best?.distance ?? Int.max) { best = (candidate, d) }
    }
    return best?.name
}

/// Optimal string alignment distance.
private func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}

extension String {
    /// The first occurrence of `target` replaced (no Foundation).
    func replacingFirst(_ target: String, with replacement: String) -> String {
        let s = Array(utf8), t = Array(target.utf8)
        guard !t.isEmpty, s.count >= t.count else { return self }
        for i in 0...(s.count - t.count) where s[i..<(i + t.count)].elementsEqual(t) {
            return String(decoding: s[..<i], as: UTF8.self) + replacement
                + String(decoding: s[(i + t.count)...], as: UTF8.self)
        }
        return self
    }
}
