import CSystemd
import Glibc

/// The daemon's side of the systemd service protocol: sd_notify, socket activation and
/// the watchdog, all read from the environment systemd gave us.
public enum SystemdNotify {
    /// Sends `state` ("READY=1", "STATUS=…", "STOPPING=1", newline-separated assignments)
    /// to $NOTIFY_SOCKET. Returns false when not run by systemd or on failure.
    @discardableResult
    public static func send(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    /// Sends `state` with fds attached, e.g. "FDSTORE=1\nFDNAME=http" to keep a
    /// listening socket in systemd's fd store across restarts of the daemon.
    @discardableResult
    public static func send(_ state: String, fds: [Int32]) -> Bool {
        var fds = fds
        return sd_pid_notify_with_fds(0, 0, state, &fds, UInt32(fds.count)) > 0
    }

    /// Whether we run under systemd with a notify socket at all.
    public static var isAvailable: Bool {
        getenv("NOTIFY_SOCKET") != nil
    }

    /// The fds systemd passed (socket activation, fd store), from 3 on, with their
    /// FileDescriptorName= ("unknown" when unnamed). Unsets $LISTEN_FDS, $LISTEN_PID and
    /// $LISTEN_FDNAMES so they cannot leak to children; a second call returns [].
    /// The fds are marked CLOEXEC.
    public static func listenFDs() -> [(fd: Int32, name: String)] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let n = sd_listen_fds_with_names(1, &names)
        defer {
            if let names {
                var i = 0
                while let p = names[i] { free(p); i += 1 }
                free(names)
            }
        }
        guard n > 0 else { return [] }
        var result: [(fd: Int32, name: String)] = []
        for i in 0..<n {
            let fd = SD_LISTEN_FDS_START + i
            _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
            let name = names?[Int(i)].map { String(cString: $0) } ?? "unknown"
            result.append((fd, name))
        }
        return result
    }

    /// Whether systemd expects WATCHDOG=1 pings (WatchdogSec= is set for us).
    public static var watchdogEnabled: Bool {
        watchdogInterval != nil
    }

    /// The watchdog interval systemd asked for, in µs ($WATCHDOG_USEC), or nil.
    public static var watchdogInterval: UInt64? {
        var usec: UInt64 = 0
        return sd_watchdog_enabled(0, &usec) > 0 ? usec : nil
    }
}
