// Probes of a service's instances (`[services.NAME.liveness]`, `[services.NAME.readiness]`):
// what the config says, and the target one instance's probe goes to (placeholders filled,
// address parsed). Pure. The policy (when to probe, what a result leads to) is ProbePolicy.swift;
// the runtime that runs them is RingmasterRuntime/Probes.swift.

public enum ProbeKind: String, Equatable, Hashable, Sendable, CaseIterable {
    /// `failures` in a row: the instance is restarted (reason `liveness`)
    case liveness
    /// with `ready = "probe"`: `successes` in a row make the instance ready
    case readiness
}

/// What a probe checks, as written (placeholders not yet filled).
public enum ProbeCheck: Equatable, Hashable, Sendable {
    /// `http = "http://127.0.0.1:{instance + 8000}/healthz"`: GET; a 2xx or 3xx status passes
    case http(String)
    /// `tcp = "127.0.0.1:5432"`: a connect that succeeds passes
    case tcp(String)
    /// `exec = ["pg_isready"]`: exit status 0 passes
    case exec([String])
}

public struct ProbeConfig: Equatable, Hashable, Sendable {
    public var check: ProbeCheck
    /// from the start of one probe to the start of the next
    public var interval: USec = 10 * USec.perSecond
    /// a probe not done by then fails (and is cancelled: its socket closed, its process killed)
    public var timeout: USec = USec.perSecond
    /// from the moment probing begins (spawn for readiness, ready for liveness) to the first probe
    public var initialDelay: USec = 0
    /// consecutive failures that count (liveness: restart)
    public var failures = 3
    /// consecutive successes that count (readiness: ready; after a failure, passing again)
    public var successes = 1

    public init(check: ProbeCheck) { self.check = check }
}

/// Where one instance's probe goes: placeholders filled and the address parsed.
public enum ProbeTarget: Equatable, Sendable {
    case http(HTTPProbeURL)
    case tcp(ListenAddress)
    case exec([String])
}

/// `http://HOST[:PORT][/PATH]` with HOST an IPv4 literal, a bracketed IPv6 literal or
/// `localhost` (127.0.0.1): names are not resolved (a lookup would block the loop or need a
/// resolver of its own, and a health check of one's own process is local).
public struct HTTPProbeURL: Equatable, Sendable {
    public var address: ListenAddress
    /// the request target, "/" at least
    public var path: String
    /// the Host header, as written in the URL
    public var host: String

    public static let maximumLength = 2048

    /// `written`: the URL as the config has it (placeholders unfilled), for messages.
    public static func parse(_ text: String, written: String? = nil) -> Result<HTTPProbeURL, ConfigValueProblem> {
        let shown = EnvFile.bounded(written ?? text)
        func bad(_ why: String) -> Result<HTTPProbeURL, ConfigValueProblem> {
            .failure(ConfigValueProblem("bad http probe URL \"\(shown)\": \(why)"))
        }
        if text.hasPrefix("https://") {
            return bad("https is not supported (a probe speaks plain HTTP to a local port; "
                       + "for TLS use exec = [\"curl\", \"-fsS\", \"https://…\"])")
        }
        guard text.hasPrefix("http://") else { return bad("expected http://HOST:PORT/PATH") }
        guard text.utf8.count <= maximumLength else { return bad("longer than \(maximumLength) bytes") }
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return bad("spaces and control or non-ASCII characters must be percent-encoded")
        }
        let rest = text.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count))
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        if authority.contains("@") { return bad("user information is not supported") }
        let hostPart: Substring
        var port: UInt16 = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return bad("missing ']' after the IPv6 address") }
            hostPart = authority[authority.startIndex...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = ListenAddressParser.port(after.dropFirst()) else {
                    return bad("the port must be a number from 1 to 65535")
                }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            guard let p = ListenAddressParser.port(authority[authority.index(after: colon)...]) else {
                return bad("the port must be a number from 1 to 65535")
            }
            port = p
        } else {
            hostPart = authority
        }
        let address: ListenAddress
        switch resolveLiteral(String(hostPart), port: port) {
        case let .success(a): address = a
        case let .failure(problem): return bad(problem.message)
        }
        return .success(HTTPProbeURL(address: address, path: path, host: String(authority)))
    }

    /// An IPv4 literal, `[IPv6]`, or `localhost`: the only hosts a probe goes to.
    static func resolveLiteral(_ host: String, port: UInt16) -> Result<ListenAddress, ConfigValueProblem> {
        if host == "localhost" { return .success(.tcp4(host: "127.0.0.1", port: port)) }
        if ListenAddressParser.isIPv4(host) { return .success(.tcp4(host: host, port: port)) }
        if host.hasPrefix("["), host.hasSuffix("]") {
            let inner = String(host.dropFirst().dropLast())
            if ListenAddressParser.isIPv6(inner) { return .success(.tcp6(host: inner, port: port)) }
        }
        if host.isEmpty { return .failure(ConfigValueProblem("no host")) }
        return .failure(ConfigValueProblem("the host must be an IP address (127.0.0.1, [::1]) or localhost: "
                                           + "names are not resolved"))
    }
}

public enum ProbeTargets {
    /// `tcp = "HOST:PORT"` with HOST an IPv4 literal, `[IPv6]` or `localhost`.
    public static func parseTCP(_ text: String, written: String? = nil) -> Result<ListenAddress, ConfigValueProblem> {
        let shown = EnvFile.bounded(written ?? text)
        guard let colon = text.lastIndex(of: ":") else {
            return .failure(ConfigValueProblem("bad tcp probe address \"\(shown)\": expected HOST:PORT"))
        }
        guard let port = ListenAddressParser.port(text[text.index(after: colon)...]) else {
            return .failure(ConfigValueProblem("bad tcp probe address \"\(shown)\": the port must be a number from 1 to 65535"))
        }
        return HTTPProbeURL.resolveLiteral(String(text[..<colon]), port: port).mapError {
            ConfigValueProblem("bad tcp probe address \"\(shown)\": \($0.message)")
        }
    }

    /// The check as instance `instance` of a service with `sockets` runs it.
    public static func target(_ check: ProbeCheck, instance: Int, sockets: [String]) -> Result<ProbeTarget, ConfigValueProblem> {
        let fill = { (text: String) in Placeholders.substitute(text, instance: instance, sockets: sockets) }
        switch check {
        case let .http(url): return HTTPProbeURL.parse(fill(url)).map { .http($0) }
        case let .tcp(address): return parseTCP(fill(address)).map { .tcp($0) }
        case let .exec(argv): return .success(.exec(argv.map(fill)))
        }
    }
}

public extension ServiceConfig {
    /// The service's probe of that kind, if any.
    func probe(_ kind: ProbeKind) -> ProbeConfig? {
        switch kind {
        case .liveness: return liveness
        case .readiness: return readiness
        }
    }

    var hasProbes: Bool { liveness != nil || readiness != nil }
}
