import CSystemd
import DBus
import Glibc

/// BusError as libsystemd's sd_bus_error.
extension BusError {
    /// Fills `ret` for sd-bus to send as the error reply; returns the negative errno
    /// sd-bus expects a handler to return.
    func set(_ ret: UnsafeMutablePointer<sd_bus_error>?) -> Int32 {
        let r = sd_bus_error_set(ret, name, message)
        return r < 0 ? r : -EIO
    }
}
