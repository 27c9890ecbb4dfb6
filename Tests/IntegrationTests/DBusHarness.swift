// What the D-Bus tests share: a daemon on a bus (the session's user bus, or a private one),
// busctl --json=short for calls and properties, dbus-send for error names (busctl does not
// print them), ringctl, and a follower for `ringctl events` / `busctl monitor`.
import Foundation
import Glibc
import XCTest

enum API {
    static let name = "io.ringmaster.Ringmaster1"
    static let managerPath = "/io/ringmaster/Ringmaster1"
    static let manager = "io.ringmaster.Ringmaster1.Manager"
    static let service = "io.ringmaster.Ringmaster1.Service"
    static let error = "io.ringmaster.Ringmaster1.Error."

    /// sd_bus_path_encode: [A-Za-z0-9] kept, any other byte as _xx; "" as "_".
    static func path(_ service: String) -> String {
        guard !service.isEmpty else { return managerPath + "/service/_" }
        var out = ""
        for b in service.utf8 {
            if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "_" + String(b, radix: 16)
            }
        }
        return managerPath + "/service/" + out
    }
}

class DBusTestCase: IntegrationTestCase {
    /// The bus of the daemon under test: nil for the session's user bus.
    var busAddress: String?

    /// Starts ringmasterd (journal mode) on `toml` and waits until it is on the bus with every
    /// autostart service settled (Manager.State = running).
    @discardableResult
    func startBusDaemon(_ toml: String, environment: [String: String] = [:],
                        file: StaticString = #filePath, line: UInt = #line) throws -> Daemon {
        var environment = environment
        if let busAddress { environment["DBUS_SESSION_BUS_ADDRESS"] = busAddress }
        let daemon = try startDaemon(toml, mode: .journal, environment: environment)
        do {
            try require("ringmasterd on the bus with State \"running\"", timeout: 20, poll: 0.05) {
                guard daemon.isRunning else { throw HarnessError("ringmasterd exited: \(daemon.log())") }
                return (try? self.managerProperty("State")) as? String == "running"
            }
        } catch {
            XCTFail("\(error)\n--- ringmasterd said:\n\(daemon.log())", file: file, line: line)
            throw error
        }
        return daemon
    }

    // MARK: busctl

    private func asUser(_ uid: uid_t?, _ argv: [String]) -> [String] {
        guard let uid else { return argv }
        return ["setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + argv
    }

    func busctl(_ arguments: [String], asUser uid: uid_t? = nil) throws -> CommandResult {
        try runCommand(asUser(uid, ["busctl", busAddress.map { "--address=\($0)" } ?? "--user", "--no-pager"] + arguments))
    }

    /// `busctl --json=short call`: the reply's values; throws with busctl's stderr on failure.
    @discardableResult
    func call(_ path: String, _ interface: String, _ method: String, _ signature: String = "",
              _ arguments: [String] = [], asUser uid: uid_t? = nil) throws -> [Any] {
        var argv = ["--json=short", "call", API.name, path, interface, method]
        if !signature.isEmpty { argv += [signature] + arguments }
        let r = try busctl(argv, asUser: uid)
        guard r.status == 0 else { throw HarnessError("\(method) failed: \(r.stderr)") }
        let text = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return [] }
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        return object?["data"] as? [Any] ?? []
    }

    @discardableResult
    func manager(_ method: String, _ signature: String = "", _ arguments: [String] = []) throws -> [Any] {
        try call(API.managerPath, API.manager, method, signature, arguments)
    }

    /// `busctl --json=short get-property`: (D-Bus type, value).
    func typedProperty(_ path: String, _ interface: String, _ name: String) throws -> (type: String, value: Any) {
        let r = try busctl(["--json=short", "get-property", API.name, path, interface, name])
        guard r.status == 0 else { throw HarnessError("get-property \(name) failed: \(r.stderr)") }
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        guard let type = object?["type"] as? String, let data = object?["data"] else {
            throw HarnessError("get-property \(name): \(r.stdout)")
        }
        return (type, data)
    }

    func managerProperty(_ name: String) throws -> Any { try typedProperty(API.managerPath, API.manager, name).value }

    func property(_ service: String, _ name: String) throws -> Any {
        try typedProperty(API.path(service), API.service, name).value
    }

    func state(_ service: String) throws -> String { try property(service, "State") as? String ?? "" }

    func number(_ service: String, _ name: String) throws -> Int {
        (try property(service, name) as? NSNumber)?.intValue ?? -1
    }

    func pids(_ service: String) throws -> [Int32] {
        (try property(service, "PIDs") as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.int32Value }
    }

    /// Waits until the service is `state` with `running` of `instances` running; a miss says
    /// what the daemon said last.
    func requireService(_ service: String, state: String = "running", running: Int? = nil, instances: Int? = nil,
                        timeout: TimeInterval = 15) throws {
        var last = "nothing"
        let met = waitUntil(timeout: timeout, poll: 0.05) {
            let s = (try? self.state(service)) ?? "?", r = (try? self.number(service, "Running")) ?? -1
            let i = (try? self.number(service, "Instances")) ?? -1
            last = "\(s), \(r)/\(i) running"
            return s == state && (running == nil || r == running) && (instances == nil || i == instances)
        }
        guard met else {
            throw HarnessError("timed out after \(timeout)s waiting for \(service) \(state), "
                               + "\(running.map(String.init) ?? "?")/\(instances.map(String.init) ?? "?") running; last seen: \(last)")
        }
    }

    /// SIGKILLs the one process of `marker` (a service the test does not look at) and waits
    /// for `follower` to show its ProcessExited: every signal the daemon sent before it took
    /// the KillService call is in the follower's lines by then (one connection, in order).
    /// What lets a test say that something did *not* happen without sleeping. (Not a Reload:
    /// whether a reload keeps what `scale` set is itself under test.)
    func flushEvents(_ follower: EventFollower, killing marker: String) throws {
        let pids = try self.pids(marker)
        guard pids.count == 1, let pid = pids.first else {
            throw HarnessError("the marker service \(marker) has \(pids.count) processes, not 1")
        }
        try manager("KillService", "si", [marker, String(SIGKILL)])
        try require("ProcessExited of the marker \(marker) (pid \(pid)) in `ringctl events`", poll: 0.05) {
            follower.events("ProcessExited", service: marker).contains { ($0["pid"] as? NSNumber)?.int32Value == pid }
        }
    }

    /// The states `service` went through per ServiceStateChanged in `follower`, in order.
    func stateChanges(_ follower: EventFollower, _ service: String) -> [String] {
        follower.events("ServiceStateChanged", service: service).compactMap { $0["state"] as? String }
    }

    /// The error name of a call that must fail, from `dbus-send --print-reply`
    /// ("Error io.ringmaster.Ringmaster1.Error.NoSuchService: …"), and its message.
    func error(_ path: String, _ member: String, _ arguments: [String] = [],
               asUser uid: uid_t? = nil) throws -> (name: String, message: String) {
        let argv = ["dbus-send", busAddress.map { "--bus=\($0)" } ?? "--session", "--print-reply",
                    "--dest=\(API.name)", path, member] + arguments
        let r = try runCommand(asUser(uid, argv))
        guard r.status != 0 else { throw HarnessError("\(member) \(arguments) succeeded; an error was expected") }
        guard let line = r.stderr.split(separator: "\n").first(where: { $0.hasPrefix("Error ") }) else {
            throw HarnessError("\(member): no error in \(r.stderr.debugDescription)")
        }
        let rest = line.dropFirst("Error ".count)
        let name = rest.prefix { $0 != ":" }
        return (String(name), String(rest.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces))
    }

    func managerError(_ method: String, _ arguments: [String] = [], asUser uid: uid_t? = nil) throws -> String {
        try error(API.managerPath, "\(API.manager).\(method)", arguments, asUser: uid).name
    }

    // MARK: ringctl

    func ringctl(_ arguments: [String], asUser uid: uid_t? = nil, timeout: TimeInterval = 30) throws -> CommandResult {
        var env = ProcessInfo.processInfo.environment
        if let busAddress { env["DBUS_SESSION_BUS_ADDRESS"] = busAddress }
        env["NO_COLOR"] = "1"
        return try runCommand(asUser(uid, [try Binaries.ringctl()] + arguments), environment: env, timeout: timeout)
    }

    /// `ringctl events --json` in the background, once it is surely subscribed: it has seen
    /// the Reloaded signal of a Reload (which changes nothing when the files did not change).
    func followEvents() throws -> EventFollower {
        var env = ProcessInfo.processInfo.environment
        if let busAddress { env["DBUS_SESSION_BUS_ADDRESS"] = busAddress }
        let follower = try EventFollower([try Binaries.ringctl(), "events", "--json"], environment: env)
        try require("ringctl events to be subscribed", timeout: 10, poll: 0.1) {
            _ = try? self.busctl(["call", API.name, API.managerPath, API.manager, "Reload"])
            return follower.objects.contains { $0["event"] as? String == "Reloaded" }
        }
        return follower
    }
}

/// A background command whose stdout is read line by line as it comes.
final class EventFollower {
    private let process = Process()
    private let path: String

    init(_ argv: [String], environment: [String: String]? = nil) throws {
        var template = Array("/tmp/ringmaster-events-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw HarnessError("mkstemp: \(String(cString: strerror(errno)))") }
        close(fd)
        path = String(cString: template)
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        try? out.close()
    }

    deinit {
        stop()
        unlink(path)
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }

    var isRunning: Bool { process.isRunning }

    var lines: [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The lines that are JSON objects, parsed.
    var objects: [[String: Any]] {
        lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The events named `event` for `service` (ringctl events --json).
    func events(_ event: String, service: String) -> [[String: Any]] {
        objects.filter { $0["event"] as? String == event && $0["name"] as? String == service }
    }
}

/// A single-threaded HTTP server on the socket passed as fd 3: replies "pid=… instance=…",
/// sends READY=1 once serving, and on SIGTERM finishes the request at hand before exiting —
/// what a server behind a shared socket must do for a restart to lose no request (the
/// supervisor keeps the socket open; the server must not drop a connection it accepted).
///
/// With SERVER_GATE_DIR in its environment it also works with a `ServerGate` there: it notes
/// "ready PID NS" just before it sends READY=1 and "term PID NS" when SIGTERM comes (NS:
/// CLOCK_MONOTONIC, the same clock in every process) in events.log, and while the file `hold`
/// exists a new process holds READY=1 back until the test releases it.
let gracefulHTTPServer = """
    import os, socket, signal, threading, time, http.server
    gate = os.environ.get("SERVER_GATE_DIR")
    serving = False
    def note(what):
        if gate:
            fd = os.open(gate + "/events.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, ("%s %d %d\\n" % (what, os.getpid(), time.monotonic_ns())).encode())
            os.close(fd)
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        def do_GET(self):
            body = ("pid=%d instance=%s\\n" % (os.getpid(), os.environ.get("RINGMASTER_INSTANCE"))).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    class Server(http.server.HTTPServer):
        def server_bind(self): pass
        def server_activate(self): pass
    server = Server(("", 0), Handler, bind_and_activate=False)
    server.socket = socket.socket(fileno=3)
    def on_term(*args):
        note("term")
        if not serving:
            os._exit(0)
        threading.Thread(target=server.shutdown).start()
    signal.signal(signal.SIGTERM, on_term)
    if gate and os.path.exists(gate + "/hold"):
        open(gate + "/waiting-%d" % os.getpid(), "w").close()
        while not os.path.exists(gate + "/release-%d" % os.getpid()):
            time.sleep(0.01)
    serving = True
    note("ready")
    notify = os.environ.get("NOTIFY_SOCKET")
    if notify:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1", "\\0" + notify[1:] if notify.startswith("@") else notify)
    server.serve_forever(poll_interval=0.05)
    """

/// The test's side of `gracefulHTTPServer`'s SERVER_GATE_DIR: holds new processes before
/// READY=1, releases them one by one, and reads what the processes noted.
struct ServerGate {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// From now on, every new process waits for `release(_:)` before it says READY=1.
    func hold() { _ = FileManager.default.createFile(atPath: directory + "/hold", contents: nil) }

    /// New processes go straight on again (those already waiting still need `release`).
    func open() { try? FileManager.default.removeItem(atPath: directory + "/hold") }

    /// The pids waiting at the gate (released or not).
    var waiting: Set<Int32> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return Set(names.compactMap { $0.hasPrefix("waiting-") ? Int32($0.dropFirst("waiting-".count)) : nil })
    }

    func release(_ pid: Int32) { _ = FileManager.default.createFile(atPath: directory + "/release-\(pid)", contents: nil) }

    struct Note: Equatable {
        var what: String
        var pid: Int32
        /// CLOCK_MONOTONIC, ns
        var time: UInt64
    }

    /// Every "ready"/"term" note, in time order.
    var notes: [Note] {
        let text = (try? String(contentsOfFile: directory + "/events.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line -> Note? in
            let f = line.split(separator: " ")
            guard f.count == 3, let pid = Int32(f[1]), let time = UInt64(f[2]) else { return nil }
            return Note(what: String(f[0]), pid: pid, time: time)
        }.sorted { $0.time < $1.time }
    }

    func pids(_ what: String) -> Set<Int32> { Set(notes.filter { $0.what == what }.map(\.pid)) }

    /// The fewest processes that had said READY=1 and not yet got SIGTERM, over every moment
    /// from the first note at or after `since` on (before it: everything noted earlier).
    func fewestReady(since: UInt64 = 0) -> Int {
        var ready = Set<Int32>(), fewest = Int.max
        for note in notes {
            if note.what == "ready" { ready.insert(note.pid) } else if note.what == "term" { ready.remove(note.pid) }
            if note.time >= since { fewest = min(fewest, ready.count) }
        }
        return fewest == Int.max ? ready.count : fewest
    }
}

extension DBusTestCase {
    /// `webAndSleeper` on a free port, started (startBusDaemon), `web`'s instances all up.
    func startServingWeb(instances: Int) throws -> (web: String, sleeper: String, port: UInt16, daemon: Daemon,
                                                    processes: [Int: ProcessInfoEntry]) {
        let web = service("web"), sleeper = service("sleeper")
        let port = try freePort()
        let daemon = try startBusDaemon(try webAndSleeper(web: web, sleeper: sleeper, port: port, instances: instances))
        return (web, sleeper, port, daemon, try requireInstances(instances, of: web, daemon: daemon))
    }

    /// A config with `web` (the graceful HTTP server, `instances`, ready = notify) on `port`
    /// and `sleeper` (one `sleep`). With `gate`, the servers work with that `ServerGate`.
    func webAndSleeper(web: String, sleeper: String, port: UInt16, instances: Int = 3,
                       gate: ServerGate? = nil) throws -> String {
        let script = dir + "/server.py"
        try gracefulHTTPServer.write(toFile: script, atomically: true, encoding: .utf8)
        return """
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            [services.\(web)]
            command = ["python3", \(TOML.string(script))]
            instances = \(instances)
            sockets = ["http"]
            ready = "notify"
            stop-timeout = "5s"
            \(gate.map { "environment = { SERVER_GATE_DIR = \(TOML.string($0.directory)) }" } ?? "")

            [services.\(sleeper)]
            command = ["sleep", "100000"]
            stop-timeout = "2s"
            restart-delay = "50ms"
            """
    }
}
