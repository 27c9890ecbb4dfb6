// The D-Bus client every daemon-facing subcommand shares: connect to the user bus, call
// io.ringmaster.Ringmaster1, and turn failures into one clear line and systemctl's exit codes.
// The connection is DBus.BusConnection (the wire protocol in Swift, no libsystemd), which is
// what lets ringctl be a static executable.
import DBus
import Glibc
import RingmasterCore

/// A failure to report as "ringctl: MESSAGE" and exit with `code`.
struct Failure: Error {
    var message: String
    var code: Int32

    init(_ message: String, code: Int32 = ExitCodes.failure) {
        self.message = message
        self.code = code
    }
}

/// systemctl's exit codes, where one fits (SPEC.md "ringctl").
enum ExitCodes {
    static let failure: Int32 = 1
    /// `status`: the daemon or a named service is not running
    static let notRunning: Int32 = 3
    static let noSuchService: Int32 = 4
}

/// The user bus itself is unreachable (so ringmasterd is too).
struct NoUserBus: Error {
    var errno: Int32

    var message: String {
        if errno == ENOMEDIUM {
            return "cannot connect to the user bus: neither $DBUS_SESSION_BUS_ADDRESS nor $XDG_RUNTIME_DIR is set"
        }
        let address = BusConnection.userBusAddress() ?? "?"
        return "cannot connect to the user bus at \(address): \(String(cString: strerror(errno)))"
    }
}

struct RingmasterClient {
    let bus: BusConnection
    /// µs per call; the daemon answers at once (commands return once under way)
    static let timeout: UInt64 = 25_000_000

    static func connect() throws -> RingmasterClient {
        do {
            return RingmasterClient(bus: try BusConnection.user())
        } catch let e as BusConnectionError {
            throw NoUserBus(errno: e.errno)
        }
    }

    static func managerCall(_ member: String, _ arguments: [BusValue] = []) -> WireMessage {
        .methodCall(destination: RingmasterBus.name, path: RingmasterBus.managerPath,
                    interface: RingmasterBus.managerInterface, member: member, arguments)
    }

    static func getAll(path: String, interface: String) -> WireMessage {
        .methodCall(destination: RingmasterBus.name, path: path, interface: "org.freedesktop.DBus.Properties",
                    member: "GetAll", [.string(interface)])
    }

    @discardableResult
    func callManager(_ member: String, _ arguments: [BusValue] = []) throws -> WireMessage {
        try bus.callAll([Self.managerCall(member, arguments)], timeout: Self.timeout)[0].get()
    }

    func servicePath(_ name: String) throws -> String {
        guard let path = try callManager("GetService", [.string(name)]).body.first?.string else {
            throw BusError(BusError.failed, "GetService returned no object path")
        }
        return path
    }
}

/// Runs `body` with a client; any failure is printed as one line on stderr and becomes the
/// exit code (`notRunning`: the code for "ringmasterd is not running").
func withClient(notRunning: Int32 = ExitCodes.failure, _ body: (RingmasterClient) throws -> Void) throws {
    do {
        try body(try RingmasterClient.connect())
    } catch let code as ExitCode {
        throw code
    } catch {
        let failure = describe(error, notRunning: notRunning)
        printError(failure.message)
        throw ExitCode(failure.code)
    }
}

/// The one line (and exit code) for an error from the bus or from a command.
func describe(_ error: Error, notRunning: Int32 = ExitCodes.failure) -> Failure {
    switch error {
    case let f as Failure:
        return f
    case let e as NoUserBus:
        return Failure(e.message, code: notRunning)
    case let e as BusError:
        switch e.name {
        case BusError.serviceUnknown, BusError.nameHasNoOwner:
            return Failure("ringmasterd is not running (no \(RingmasterBus.name) on the user bus)", code: notRunning)
        case BusError.noReply, BusError.timeout:
            return Failure("ringmasterd did not answer (\(e.message))")
        case RingmasterBus.ErrorName.noSuchService:
            return Failure(e.message, code: ExitCodes.noSuchService)
        case RingmasterBus.ErrorName.accessDenied, BusError.accessDenied:
            return Failure("permission denied: \(e.message)")
        default:
            return Failure(e.message.isEmpty ? e.name : e.message)
        }
    case let e as BusConnectionError:
        return Failure("\(e)")
    default:
        return Failure("\(error)")
    }
}

func printError(_ message: String) {
    var line = "ringctl: " + message + "\n"
    line.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stderr) }
}

/// Runs a command per service name; every failure is reported, the exit code is the first
/// failure's (so `ringctl start a nope b` starts a and b and exits 4).
func forEachService(_ names: [String], _ body: (RingmasterClient, String) throws -> Void) throws {
    var code: Int32 = 0
    try withClient { client in
        for name in names {
            do {
                try body(client, name)
            } catch let e as BusError where e.isNoOwner {
                throw e
            } catch let exit as ExitCode {
                if code == 0 { code = exit.rawValue }
            } catch {
                let failure = describe(error)
                printError(failure.message)
                if code == 0 { code = failure.code }
            }
        }
    }
    if code != 0 { throw ExitCode(code) }
}
