/// A D-Bus error: a name ("io.ringmaster.Ringmaster1.Error.NoSuchService") and a
/// human-readable message. Thrown by method and property handlers (the bus replies with
/// it) and by client calls (the peer replied with it).
public struct BusError: Error, Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var message: String

    /// `message` is cut to at most 512 bytes (plus its length): it may echo a caller's
    /// argument, up to 128 MiB of it.
    public init(_ name: String, _ message: String) {
        self.name = name
        self.message = message
        if message.utf8.count > 512 {
            var cut = message.utf8.prefix(512)
            while let last = cut.last, last & 0xC0 == 0x80 { cut = cut.dropLast() } // not inside a character
            if let last = cut.last, last >= 0xC0 { cut = cut.dropLast() }
            self.message = String(decoding: cut, as: UTF8.self) + "… (\(message.utf8.count) bytes in all)"
        }
    }

    public var description: String { message.isEmpty ? name : message }

    // The standard names a client may need to recognise.
    public static let failed = "org.freedesktop.DBus.Error.Failed"
    public static let invalidArgs = "org.freedesktop.DBus.Error.InvalidArgs"
    public static let serviceUnknown = "org.freedesktop.DBus.Error.ServiceUnknown"
    public static let nameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"
    public static let noReply = "org.freedesktop.DBus.Error.NoReply"
    public static let timeout = "org.freedesktop.DBus.Error.Timeout"
    public static let unknownObject = "org.freedesktop.DBus.Error.UnknownObject"
    public static let unknownMethod = "org.freedesktop.DBus.Error.UnknownMethod"
    public static let accessDenied = "org.freedesktop.DBus.Error.AccessDenied"

    /// Whether the error means nobody owns the destination name.
    public var isNoOwner: Bool {
        name == BusError.serviceUnknown || name == BusError.nameHasNoOwner
    }
}
