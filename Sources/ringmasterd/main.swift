// ringmasterd: runs the stack described in ringmaster.toml, in the foreground, on one sd-event loop.
import ConfigFiles
import CRingShims
import Glibc
import RingmasterCore
import RingmasterRuntime
import Systemd

// First thing, before any thread can exist: the signals the loop handles as event sources.
SignalMask.block([SIGCHLD, SIGTERM, SIGINT, SIGHUP])
// A write to a closed pipe or socket is an error return here, not a death (children get SIG_DFL back).
signal(SIGPIPE, SIG_IGN)
ring_malloc_return_big_buffers()

struct Options {
    var configPath: String?
    var logTarget = "auto"
    var verbose = false
}

let usage = """
    Usage: ringmasterd [--config PATH] [--log-target auto|journal|console] [--verbose]

    Runs the services of a ringmaster.toml in the foreground until SIGTERM or SIGINT.
      --config PATH      the config file (default: $XDG_CONFIG_HOME/ringmaster/ringmaster.toml,
                         plus conf.d/*.toml beside it)
      --log-target T     journal: children log to journald streams, events to the journal;
                         console: everything to stderr, child lines prefixed "web.2 | ";
                         auto (default): journal when stderr is already a journald stream
      --verbose          also log every instance state transition on the console
      --version, --help

    """

/// EX_CONFIG: the unit's RestartPreventExitStatus= keeps systemd from restarting into the same error.
let invalidConfigStatus: Int32 = 78

func fail(_ message: String, status: Int32 = 1) -> Never {
    writeStderr("ringmasterd: \(message)\n")
    exit(status)
}

func parseOptions(_ args: [String]) -> Options {
    var o = Options()
    var i = 1
    func value(_ flag: String) -> String {
        i += 1
        guard i < args.count else { fail("\(flag) needs a value\n\(usage)", status: 2) }
        return args[i]
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--config", "-c": o.configPath = value(a)
        case "--log-target": o.logTarget = value(a)
        case "--verbose", "-v": o.verbose = true
        case "--help", "-h": writeAll(fd: 1, usage); exit(0)
        case "--version": writeAll(fd: 1, "ringmasterd \(ringmasterVersion)\n"); exit(0)
        default:
            if a.hasPrefix("--config=") { o.configPath = String(a.dropFirst(9)) }
            else if a.hasPrefix("--log-target=") { o.logTarget = String(a.dropFirst(13)) }
            else { fail("unknown argument \"\(a)\"\n\(usage)", status: 2) }
        }
        i += 1
    }
    return o
}

let options = parseOptions(CommandLine.arguments)

let target: LogTarget
switch options.logTarget {
case "auto": target = Journal.stderrIsJournal ? .journal : .console
case "journal": target = .journal
case "console": target = .console
default: fail("--log-target must be auto, journal or console, not \"\(options.logTarget)\"", status: 2)
}
let log = EventLog(target: target)
log.verbose = options.verbose

func absolute(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return path }
    return String(cString: buf) + "/" + path
}

func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

var environment: [String: String] = [:]
for name in ["XDG_CONFIG_HOME", "HOME"] {
    if let v = getenv(name) { environment[name] = String(cString: v) }
}
let configPath = absolute(options.configPath ?? ConfigLoader.defaultConfigPath(environment: environment))
var config = Config()
if options.configPath == nil && access(configPath, F_OK) != 0 {
    log.info("config", "no config at \(configPath): running with no services")
} else {
    do {
        config = try ConfigLoader.load(mainFile: configPath)
    } catch {
        for d in error.diagnostics { writeStderr("\(d)\n") }
        if target == .journal {
            log.error("config", "invalid config \(configPath):\n\(error)")
        }
        fail("invalid config, not starting (\(error.diagnostics.count) problem\(error.diagnostics.count == 1 ? "" : "s"))",
             status: invalidConfigStatus)
    }
}

let loop: EventLoop
do { loop = try EventLoop() } catch { fail("\(error)") }
// Console mode: from here on a stderr that nobody reads can hold back output, not the loop.
if target == .console { ConsoleSink.shared.attach(to: loop) }
// Journal mode: entries journald cannot take now wait, and go out when it can.
log.attach(to: loop)

// Socket units' fds and the fd store's, read once (and removed from the environment).
let passed = SystemdNotify.listenFDs()

var childEnvironment: ChildEnvironment
do { childEnvironment = try ChildEnvironment(configDirectory: directory(of: configPath)) } catch { fail("\(error)") }
childEnvironment.raiseFileLimit()

let daemon = Daemon(configPath: configPath, config: config, loop: loop, log: log,
                    environment: childEnvironment, passed: passed)
// Instances × the descriptors each needs, against the open-file limit: a clear error, not an EMFILE storm.
do { try daemon.checkCapacity(of: config) } catch { fail("invalid config, not starting: \(error)", status: invalidConfigStatus) }
do { try daemon.openSockets() } catch { fail("\(error)") }
// After each quiet period, drop the executable's clean pages (start-up code, the control path).
if let delay = WorkingSetTrim.delayMS(fromEnvironment: getenv(WorkingSetTrim.delayVariable).map { String(cString: $0) }) {
    daemon.workingSetTrim = WorkingSetTrim(loop: loop, log: log, delayMS: delay)
}

// Delegate=yes: ringmasterd moves into <own cgroup>/supervisor, every instance gets its own.
switch CgroupTree.takeOver() {
case let .success(tree):
    daemon.supervisor.cgroups = tree
    log.info("cgroup", "delegated cgroup \(tree.path): one sub-cgroup per instance"
             + (tree.controllers.isEmpty ? "" : " (controllers: \(tree.controllers.joined(separator: " ")))"))
case let .failure(why):
    log.info("cgroup", "cgroup not delegated (\(why)): instances are tracked by process group")
}

var signalSources: [EventSource] = []
do {
    for signo in [SIGTERM, SIGINT] {
        signalSources.append(try loop.onSignal(signo) { signo in
            if daemon.state == .stopping { return }
            log.info("shutdown", "received \(signo == SIGTERM ? "SIGTERM" : "SIGINT"): stopping every service")
            daemon.shutdown { loop.exit(0) }
        })
    }
    signalSources.append(try loop.onSignal(SIGHUP) { _ in
        log.info("reload", "SIGHUP: reloading \(configPath)")
        daemon.reload()
    })
} catch { fail("\(error)") }

// The control plane: io.ringmaster.Ringmaster1 on the user bus. Without a user bus (a
// container, a plain terminal) the daemon still supervises; it says so once.
var control: BusService?
do { control = try BusService(daemon: daemon, bus: try Bus.user()) }
catch { log.write(LogEvent(.warning, "dbus", "no D-Bus control plane: \(error)")) }

log.info("started", "ringmasterd \(ringmasterVersion) running \(config.services.count) service\(config.services.count == 1 ? "" : "s") from \(configPath)")
daemon.start()
do {
    let code = try loop.run()
    log.info("stopped", "ringmasterd stopped")
    ConsoleSink.shared.finish(timeout: 2)
    log.finish(timeout: 2)
    exit(code)
} catch {
    fail("event loop: \(error)")
}
