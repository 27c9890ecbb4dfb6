import Glibc

/// A local failure on the connection: connecting, writing, reading, or the bus hanging up.
public struct BusConnectionError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { operation + ": " + String(cString: strerror(errno)) }
}

/// A blocking D-Bus client connection over a unix socket, speaking the wire protocol itself
/// (no libsystemd): what `ringctl` uses, so that it can be one static executable that starts
/// in about a millisecond. Authentication (EXTERNAL), BEGIN and Hello go out in one write
/// with no wait, and `callAll` sends any number of calls at once and then collects their
/// replies: a whole `ringctl status` is one round trip to the daemon.
///
/// Not for servers, unix fds, or several threads.
public final class BusConnection {
    private let fd: Int32
    private var nextSerial: UInt32 = 1
    /// Bytes received and not parsed yet, from `inboxStart`.
    private var inbox: [UInt8] = []
    private var inboxStart = 0
    private var authenticated = false
    private let helloSerial: UInt32
    /// Replies that arrived while another was awaited (calls sent together).
    private var replies: [UInt32: WireMessage] = [:]
    /// Signals that arrived while a reply was awaited, for `nextSignal`.
    private var signals: [WireMessage] = []
    /// Keep signals for `nextSignal` (after `addMatch`); otherwise they are dropped.
    private var keepSignals = false

    /// This connection's unique name (":1.42"), once the Hello reply has arrived.
    public private(set) var uniqueName: String?

    /// The user's session bus: `userBusAddress`. Throws BusConnectionError (ENOMEDIUM when
    /// there is none).
    public static func user() throws -> BusConnection {
        guard let address = userBusAddress() else { throw BusConnectionError("connecting to the user bus", errno: ENOMEDIUM) }
        return try BusConnection(address: address)
    }

    /// $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus (as sd_bus_open_user does); nil
    /// when neither is set.
    public static func userBusAddress() -> String? {
        if let address = getenv("DBUS_SESSION_BUS_ADDRESS").map({ String(cString: $0) }), !address.isEmpty {
            return address
        }
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !runtime.isEmpty {
            return "unix:path=" + BusAddress.escape(runtime + "/bus")
        }
        return nil
    }

    /// Connects to the first address of `address` (a D-Bus address list) that accepts, and
    /// sends the authentication and Hello without waiting for an answer.
    public init(address: String) throws {
        let targets = BusAddress.unixSockets(address)
        guard !targets.isEmpty else { throw BusConnectionError("no unix socket in bus address \"\(address)\"", errno: EINVAL) }
        var lastErrno = ECONNREFUSED
        var connected: Int32 = -1
        for target in targets {
            let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { throw BusConnectionError("socket", errno: errno) }
            if BusAddress.connect(s, to: target) == 0 { connected = s; break }
            lastErrno = errno
            close(s)
        }
        guard connected >= 0 else { throw BusConnectionError("connecting to the bus at \(address)", errno: lastErrno) }
        fd = connected
        helloSerial = nextSerial
        nextSerial += 1
        do {
            // "\0", then AUTH EXTERNAL with our uid in hex-encoded decimal, then BEGIN at once
            // (the bus buffers what follows BEGIN), then the Hello call.
            var out: [UInt8] = [0]
            out += Array("AUTH EXTERNAL \(Self.hex(String(geteuid())))\r\nBEGIN\r\n".utf8)
            out += try WireMessage.methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                              interface: "org.freedesktop.DBus", member: "Hello").encoded(serial: helloSerial)
            try write(out)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    // MARK: calls

    /// Calls a method and waits for its reply (at most `timeout` µs). Throws BusError for an
    /// error reply (or no reply in time), BusConnectionError for a local failure.
    @discardableResult
    public func call(destination: String?, path: String, interface: String?, member: String,
                     _ arguments: [BusValue] = [], timeout: UInt64 = 25_000_000) throws -> WireMessage {
        let call = WireMessage.methodCall(destination: destination, path: path, interface: interface,
                                          member: member, arguments)
        return try callAll([call], timeout: timeout)[0].get()
    }

    /// Sends every call in one write, then waits for all the replies (at most `timeout` µs in
    /// all): each is the reply, or the BusError it was answered with.
    public func callAll(_ calls: [WireMessage], timeout: UInt64 = 25_000_000) throws -> [Result<WireMessage, Error>] {
        let serials = try sendCalls(calls)
        let deadline = Self.now() + timeout
        return try serials.map { serial in
            while replies[serial] == nil {
                guard let message = try receive(until: deadline) else {
                    throw BusError(BusError.timeout, "no reply within \(timeout / 1_000_000) s")
                }
                dispatch(message)
            }
            let reply = replies.removeValue(forKey: serial)!
            if let error = reply.busError { return .failure(error) }
            return .success(reply)
        }
    }

    /// Sends every call in one write, then waits as long as it takes for all the replies,
    /// handing each signal that arrives meanwhile (those `addMatch` asked for) to `onSignal`.
    public func callAllWatching(_ calls: [WireMessage], onSignal: (WireMessage) -> Void) throws -> [Result<WireMessage, Error>] {
        let serials = try sendCalls(calls)
        return try serials.map { serial in
            while replies[serial] == nil {
                guard let message = try receive(until: UInt64.max) else { continue }
                dispatch(message)
                while !signals.isEmpty { onSignal(signals.removeFirst()) }
            }
            let reply = replies.removeValue(forKey: serial)!
            if let error = reply.busError { return .failure(error) }
            return .success(reply)
        }
    }

    /// Writes the calls in one write; returns their serials.
    private func sendCalls(_ calls: [WireMessage]) throws -> [UInt32] {
        var out: [UInt8] = []
        var serials: [UInt32] = []
        for call in calls {
            serials.append(nextSerial)
            out += try call.encoded(serial: nextSerial)
            nextSerial &+= 1
            if nextSerial == 0 { nextSerial = 1 }
        }
        try write(out)
        return serials
    }

    /// Whether someone owns `name` right now.
    public func hasOwner(_ name: String) throws -> Bool {
        let reply = try call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                             interface: "org.freedesktop.DBus", member: "NameHasOwner", [.string(name)])
        return reply.body.first?.bool ?? false
    }

    // MARK: signals

    /// Asks the bus for the messages matching `rule` ("type='signal',sender=…"); they arrive
    /// through `nextSignal`.
    public func addMatch(_ rule: String) throws {
        keepSignals = true
        try call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                 interface: "org.freedesktop.DBus", member: "AddMatch", [.string(rule)])
    }

    /// The next signal, waiting as long as it takes (throws when the bus hangs up).
    public func nextSignal() throws -> WireMessage {
        while signals.isEmpty {
            guard let message = try receive(until: UInt64.max) else { continue }
            dispatch(message)
        }
        return signals.removeFirst()
    }

    // MARK: the socket

    private func dispatch(_ message: WireMessage) {
        switch message.kind {
        case .methodReturn, .error:
            guard let serial = message.replySerial else { return }
            if serial == helloSerial {
                uniqueName = message.body.first?.string
            } else {
                replies[serial] = message
            }
        case .signal:
            // NameAcquired and NameLost are sent to every client: only matched ones are kept.
            if keepSignals, message.sender != "org.freedesktop.DBus" || message.member == "NameOwnerChanged" {
                signals.append(message)
            }
        case .methodCall:
            break // a client exports nothing; the bus tells the caller it timed out
        }
    }

    /// The next whole message, reading as needed until `deadline` (µs, CLOCK_MONOTONIC);
    /// nil if none arrived in time.
    private func receive(until deadline: UInt64) throws -> WireMessage? {
        while true {
            if authenticated {
                // Decoded where it lies in the inbox; `fill` drops what was consumed.
                let pending = inbox[inboxStart...]
                if let length = try WireMessage.length(ofMessageAt: pending), pending.count >= length {
                    inboxStart += length
                    return try WireMessage(decoding: pending.prefix(length))
                }
            } else if let line = try takeLine() {
                // The answer to AUTH: OK <server guid>; anything else ends the connection.
                guard line.hasPrefix("OK ") else {
                    throw BusError(BusError.accessDenied, "the bus refused authentication: \(line)")
                }
                authenticated = true
                continue
            }
            guard try fill(until: deadline) else { return nil }
        }
    }

    /// The longest authentication line accepted from the bus (dbus-daemon's own limit for a
    /// line of the auth protocol is 16 KiB).
    static let maxAuthLine = 16 << 10

    /// How far past `inboxStart` the inbox has been searched for "\r\n" already: each read
    /// searches only what it added (a line arriving in many pieces is not scanned again and
    /// again — that was quadratic).
    private var authScanned = 0

    /// A "\r\n"-terminated line at the start of the inbox (authentication), if whole; throws
    /// once more than `maxAuthLine` bytes came without one.
    private func takeLine() throws -> String? {
        var i = inboxStart + max(authScanned - 1, 0)
        while i + 1 < inbox.count {
            if inbox[i] == 13, inbox[i + 1] == 10 {
                let line = String(decoding: inbox[inboxStart..<i], as: UTF8.self)
                inboxStart = i + 2
                authScanned = 0
                return line
            }
            i += 1
        }
        authScanned = inbox.count - inboxStart
        if authScanned > Self.maxAuthLine {
            throw BusError(BusError.accessDenied, "the bus sent an authentication line over 16 KiB without its end")
        }
        return nil
    }

    /// Reads what is there (waiting until `deadline`); false on timeout.
    private func fill(until deadline: UInt64) throws -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let now = Self.now()
            let wait = deadline == UInt64.max ? -1 : (deadline <= now ? 0 : Int32(min((deadline - now + 999) / 1000, 1 << 30)))
            let r = poll(&pfd, 1, wait)
            if r < 0 { if errno == EINTR { continue }; throw BusConnectionError("waiting on the bus", errno: errno) }
            if r == 0 { return false }
            break
        }
        if inboxStart > 0, inboxStart * 2 >= inbox.count {
            inbox.removeFirst(inboxStart)
            inboxStart = 0
        }
        let n = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65_536) { chunk -> Int in
            var n: Int
            repeat { n = recv(fd, chunk.baseAddress, chunk.count, 0) } while n < 0 && errno == EINTR
            if n > 0 { inbox.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<n])) }
            return n
        }
        if n < 0 { throw BusConnectionError("reading from the bus", errno: errno) }
        if n == 0 { throw BusConnectionError("reading from the bus", errno: ECONNRESET) }
        return true
    }

    private func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; throw BusConnectionError("writing to the bus", errno: errno) }
            sent += n
        }
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    private static func hex(_ s: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in s.utf8 { out += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}
