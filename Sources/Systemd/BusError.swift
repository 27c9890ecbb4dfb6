import CSystemd
import DBus
import Glibc

/// BusError to and from libsystemd's sd_bus_error.
extension BusError {
    /// Copies a filled-in sd_bus_error (does not free it).
    init(_ e: sd_bus_error) {
        self.init(e.name.map { String(cString: $0) } ?? BusError.failed,
                  e.message.map { String(cString: $0) } ?? "")
    }

    /// Fills `ret` for sd-bus to send as the error reply; returns the negative errno
    /// sd-bus expects a handler to return.
    func set(_ ret: UnsafeMutablePointer<sd_bus_error>?) -> Int32 {
        let r = sd_bus_error_set(ret, name, message)
        return r < 0 ? r : -EIO
    }
}
