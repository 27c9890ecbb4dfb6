// The keys of a [services.NAME] table, decoded one by one into ServiceConfig.
// The reference checks (sockets, after, placeholders) and cycles are in ConfigValidation.swift.

extension ConfigValidator {
    static let serviceKeys = [
        "command", "shell", "instances", "sockets", "ready", "restart", "restart-delay",
        "restart-delay-max", "stable-after", "start-limit", "stop-signal", "stop-timeout",
        "environment", "env-file", "working-directory", "after", "autostart",
        "reload-signal",
    ]
    static let startLimitKeys = ["count", "interval"]
    static var maximumInstances: Int { ServiceConfig.maximumInstances }
    /// set by ringmaster for every child; a service may not override them
    static let reservedEnvironment: Set<String> = [
        "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "NOTIFY_SOCKET", "JOURNAL_STREAM",
        "RINGMASTER_SERVICE", "RINGMASTER_INSTANCE",
    ]
    static let shellPath = "/bin/sh"

    mutating func service(_ entry: TOMLEntry, references refs: inout ServiceReferences) -> ServiceConfig? {
        let name = entry.key
        let context = "[services.\(TOML.quotedKeyIfNeeded(name))]"
        let errorsBefore = diagnostics.count
        checkName(name, kind: "service", at: entry.keyLocation)
        guard let table = entry.value.table else {
            error(entry.value.location, "service \"\(name)\" must be a table, not \(entry.value.typeNameWithArticle)")
            return nil
        }
        var service = ServiceConfig(name: name, command: [])
        var commandValue: TOMLValue?
        var restartDelay: TOMLEntry?
        var restartDelayMax: TOMLEntry?
        var memoryHigh: TOMLEntry?
        var memoryRestart: TOMLEntry?

        for e in table.entries {
            let v = e.value
            switch e.key {
            case "command":
                commandValue = v
            case "shell":
                if let b = boolean(v, "shell") { service.shell = b }
            case "instances":
                if let n = instances(v) { service.instances = n }
            case "sockets":
                if let list = stringArray(v, "sockets") {
                    refs.sockets = list
                    service.sockets = list.map(\.name)
                }
            case "ready":
                if let mode: ReadyMode = choice(v, "ready") { service.ready = mode }
            case "restart":
                if let policy: RestartPolicy = choice(v, "restart") { service.restart = policy }
            case "restart-delay":
                restartDelay = e
                if let d = duration(v, e.key) { service.restartDelay = d }
            case "restart-delay-max":
                restartDelayMax = e
                if let d = duration(v, e.key) { service.restartDelayMax = d }
            case "stable-after":
                if let d = duration(v, e.key) { service.stableAfter = d }
            case "start-limit":
                if let limit = startLimit(v, context: context) { service.startLimit = limit }
            case "stop-signal":
                if let signal = stopSignal(v) { service.stopSignal = signal }
            case "stop-timeout":
                if let d = duration(v, e.key) { service.stopTimeout = d }
            case "reload-signal":
                if let signal = stopSignal(v, key: e.key) { service.reloadSignal = signal }
            case "environment":
                if let env = environment(v, context: context) {
                    service.environment = env
                    refs.placeholderStrings += v.table?.entries.map(\.value) ?? []
                }
            case "env-file":
                if let (files, variables) = envFiles(v) {
                    service.envFiles = files
                    service.envFileEnvironment = variables
                }
            case "working-directory":
                if let dir = workingDirectory(v) {
                    service.workingDirectory = dir
                    refs.placeholderStrings.append(v)
                }
            case "after":
                if let list = stringArray(v, "after") {
                    refs.after = list
                    service.after = list.map(\.name)
                }
            case "autostart":
                if let b = boolean(v, "autostart") { service.autostart = b }
            default:
                if e.key == "memory-high" { memoryHigh = e }
                if e.key == "memory-restart" { memoryRestart = e }
                if !limitKey(e, into: &service.limits) && !taskKey(e, into: &service, refs: &refs)
                    && !probeKey(e, into: &service, context: context, refs: &refs) && !healthKey(e, into: &service)
                    && !deployKey(e, into: &service) {
                    unknownKey(e, in: "in \(context)", known: Self.serviceKeys + Self.limitKeys + Self.taskKeys
                               + Self.probeTables + Self.healthKeys + Self.deployKeys)
                }
            }
        }
        checkMemoryLimits(service.limits, high: memoryHigh)
        checkTaskKeys(&service, table: table)
        checkProbes(service, table: table, context: context)
        checkMemoryRestart(service, at: memoryRestart)

        if let commandValue {
            if let argv = command(commandValue, shell: service.shell, refs: &refs) { service.command = argv }
        } else {
            error(entry.keyLocation, "\(context) has no command")
        }
        if let restartDelay, let restartDelayMax, service.restartDelayMax < service.restartDelay {
            error(restartDelayMax.value.location, "restart-delay-max must not be less than restart-delay "
                  + "(at \(restartDelay.value.location.line):\(restartDelay.value.location.column))")
        }
        return diagnostics.count == errorsBefore ? service : nil
    }

    /// argv: an array of strings; with `shell = true`, one string stored as
    /// `["/bin/sh", "-c", script]` so the runtime can exec it like any other argv.
    private mutating func command(_ value: TOMLValue, shell: Bool,
                                  refs: inout ServiceReferences) -> [String]? {
        if shell {
            let script: String?
            if let items = value.array {
                guard items.count == 1 else {
                    error(value.location, "with shell = true, command must be one string, "
                          + "not an array of \(items.count)")
                    return nil
                }
                script = string(items[0], "command")
                if script != nil { refs.placeholderStrings.append(items[0]) }
            } else {
                script = string(value, "command", "a string (with shell = true)")
                if script != nil { refs.placeholderStrings.append(value) }
            }
            guard let script else { return nil }
            if script.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\n" }) {
                error(value.location, "command must not be empty")
                return nil
            }
            return [Self.shellPath, "-c", script]
        }
        if value.string != nil {
            error(value.location, "command must be an array of strings, not a string "
                  + "(or set shell = true to run it with /bin/sh -c)")
            return nil
        }
        guard let argv = stringArray(value, "command") else { return nil }
        guard let first = argv.first else {
            error(value.location, "command must not be empty")
            return nil
        }
        if first.name.isEmpty {
            error(first.location, "command[0] (the program) must not be empty")
            return nil
        }
        refs.placeholderStrings += value.array ?? []
        return argv.map(\.name)
    }

    private mutating func instances(_ value: TOMLValue) -> Int? {
        guard let n = value.integer else {
            error(value.location, "instances must be an integer, not \(value.typeNameWithArticle)")
            return nil
        }
        if let problem = ServiceConfig.instancesProblem(n) {
            error(value.location, problem)
            return nil
        }
        return Int(n)
    }

    /// A string that must be one of an enum's raw values.
    mutating func choice<T: RawRepresentable & CaseIterable>(_ value: TOMLValue, _ what: String) -> T?
        where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        let shown = names.dropLast().map { "\"\($0)\"" }.joined(separator: ", ") + " or \"\(names.last ?? "")\""
        guard let text = value.string else {
            error(value.location, "\(what) must be \(shown), not \(value.typeNameWithArticle)")
            return nil
        }
        guard let result = T(rawValue: text) else {
            error(value.location, "\(what) must be \(shown), not \"\(text)\"" + Self.suggestion(text, among: names))
            return nil
        }
        return result
    }

    private mutating func startLimit(_ value: TOMLValue, context: String) -> StartLimit? {
        guard let table = value.table else {
            error(value.location, "start-limit must be a table like { count = 5, interval = \"10s\" }, "
                  + "not \(value.typeNameWithArticle)")
            return nil
        }
        var limit = ServiceConfig(name: "", command: []).startLimit
        var ok = true
        for e in table.entries {
            switch e.key {
            case "count":
                if let n = e.value.integer, n >= 1, n <= Int64(Int32.max) {
                    limit.count = Int(n)
                } else if e.value.integer != nil {
                    error(e.value.location, "start-limit.count must be 1 or more")
                    ok = false
                } else {
                    error(e.value.location, "start-limit.count must be an integer, not \(e.value.typeNameWithArticle)")
                    ok = false
                }
            case "interval":
                if let d = duration(e.value, "start-limit.interval") {
                    if d == 0 { error(e.value.location, "start-limit.interval must be more than 0"); ok = false }
                    limit.interval = d
                } else {
                    ok = false
                }
            default:
                let where_ = "in " + String(context.dropLast()) + ".start-limit]"
                unknownKey(e, in: where_, known: Self.startLimitKeys)
                ok = false
            }
        }
        return ok ? limit : nil
    }

    /// A signal name ("TERM", "SIGTERM", "RTMIN+1") or number.
    private mutating func stopSignal(_ value: TOMLValue, key: String = "stop-signal") -> Int32? {
        if let n = value.integer {
            guard n >= 1, n <= Int64(Signals.realtimeMaximum) else {
                error(value.location, "\(key) \(n) is not a signal number")
                return nil
            }
            return Int32(n)
        }
        guard let text = string(value, key, "a signal name like \"\(key == "stop-signal" ? "TERM" : "HUP")\"") else { return nil }
        guard let number = Signals.number(named: text) else {
            error(value.location, Signals.unknownNameMessage(text))
            return nil
        }
        return number
    }

    private mutating func environment(_ value: TOMLValue, context: String) -> [EnvironmentVariable]? {
        guard let table = value.table else {
            error(value.location, "environment must be a table like { NAME = \"value\" }, "
                  + "not \(value.typeNameWithArticle)")
            return nil
        }
        var out: [EnvironmentVariable] = []
        var ok = true
        for e in table.entries {
            let name = e.key
            if name.isEmpty || name.utf8.contains(where: { $0 == UInt8(ascii: "=") || $0 == 0 }) {
                error(e.keyLocation, "invalid environment variable name \"\(name)\"")
                ok = false
                continue
            }
            if Self.reservedEnvironment.contains(name) {
                error(e.keyLocation, "environment variable \(name) is set by ringmaster and cannot be overridden")
                ok = false
                continue
            }
            let what = "environment." + TOML.quotedKeyIfNeeded(name)
            if e.value.integer != nil || e.value.boolean != nil || e.value.float != nil {
                error(e.value.location, "\(what) must be a string, not \(e.value.typeNameWithArticle) "
                      + "(write it in quotes)")
                ok = false
                continue
            }
            guard let text = string(e.value, what) else { ok = false; continue }
            out.append(EnvironmentVariable(name, text))
        }
        return ok ? out : nil
    }

    /// `env-file`: a string or an array of strings; each file resolved (EnvFile.resolve),
    /// read through `externalFiles` and parsed now, so the values are part of the config.
    /// A missing file is an error at its name here, unless written with a leading "-".
    private mutating func envFiles(_ value: TOMLValue) -> ([EnvFileReference], [EnvironmentVariable])? {
        let items: [TOMLValue]
        if value.string != nil {
            items = [value]
        } else if let array = value.array {
            items = array
        } else {
            error(value.location, "env-file must be a string or an array of strings, not \(value.typeNameWithArticle)")
            return nil
        }
        var files: [EnvFileReference] = []
        var variables: [EnvironmentVariable] = []
        var ok = true
        for (i, item) in items.enumerated() {
            guard var written = string(item, value.array == nil ? "env-file" : "env-file[\(i)]") else { ok = false; continue }
            let optional = written.hasPrefix("-")
            if optional { written.removeFirst() }
            let path: String
            switch EnvFile.resolve(written, configFile: item.location.file, home: externalFiles.home) {
            case let .success(resolved): path = resolved
            case let .failure(problem): error(item.location, problem.message); ok = false; continue
            }
            files.append(EnvFileReference(path: path, optional: optional))
            let bytes: [UInt8]
            switch externalFiles.read(path) {
            case let .success(read): bytes = read
            case let .failure(problem) where problem.missing && optional: continue
            case let .failure(problem):
                let hint = problem.missing ? " (a leading \"-\" makes a file optional)" : ""
                error(item.location, "env-file \(EnvFile.boundedPath(path)): \(problem.message)\(hint)")
                ok = false
                continue
            }
            do {
                for entry in try EnvFile.parse(bytes, file: path) {
                    if Self.reservedEnvironment.contains(entry.name) {
                        error(entry.location, "environment variable \(entry.name) is set by ringmaster and cannot be overridden")
                        ok = false
                    } else {
                        variables.append(EnvironmentVariable(entry.name, entry.value))
                    }
                }
            } catch {
                self.error(error.location, error.message)
                ok = false
            }
        }
        return ok ? (files, variables) : nil
    }

    /// An absolute path, "~" or "~/…" (the user's home), or a path relative to the main
    /// config file's directory; the runtime resolves it. "~user" is not supported.
    private mutating func workingDirectory(_ value: TOMLValue) -> String? {
        guard let dir = string(value, "working-directory") else { return nil }
        if dir.isEmpty {
            error(value.location, "working-directory must not be empty")
            return nil
        }
        if dir.hasPrefix("~") && dir != "~" && !dir.hasPrefix("~/") {
            error(value.location, "working-directory \"\(dir)\": only ~ and ~/… are expanded, not ~user")
            return nil
        }
        return dir
    }
}
