import CRingShims
import Glibc

/// One instance's private sd_notify endpoint: a unix datagram socket on a unique abstract
/// address, given to the child as NOTIFY_SOCKET. SO_PASSCRED makes the kernel attach the
/// sender's pid and uid to every datagram, so READY=1 can be attributed (and refused when
/// it comes from another user). Owning: deinit closes the fd.
public final class NotifySocket {
    public let fd: Int32
    /// The value for the child's NOTIFY_SOCKET, e.g. "@ringmaster/4242/7".
    public let address: String

    /// systemd's limit for a notify datagram (NOTIFY_BUFFER_MAX); longer ones are cut.
    public static let maxMessageSize = 4096
    /// At most this many datagrams per `receive()`; the fd stays readable if more wait.
    public static let maxMessagesPerReceive = 1024

    private static var counter: UInt64 = 0

    public init() throws(SocketError) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", address: "@ringmaster", errno: errno) }
        var one: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let e = errno
            close(fd)
            throw SocketError("setsockopt SO_PASSCRED", address: "@ringmaster", errno: e)
        }
        // Abstract names vanish with the socket: nothing to clean up, no stale files.
        // Retry on the (unlikely) clash with a name a previous daemon with our pid still holds.
        var attempts = 0
        while true {
            NotifySocket.counter += 1
            let name = "ringmaster/\(getpid())/\(NotifySocket.counter)"
            var (sa, length) = unixAddress([0] + Array(name.utf8))!
            let r = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            if r == 0 {
                self.fd = fd
                self.address = "@" + name
                return
            }
            let e = errno
            attempts += 1
            if e != EADDRINUSE || attempts >= 16 {
                close(fd)
                throw SocketError("bind", address: "@" + name, errno: e)
            }
        }
    }

    deinit {
        close(fd)
    }

    /// Drains the pending datagrams without blocking, each with the sender's pid and uid
    /// (pid 0 / uid UInt32.max when no credentials came along). Fds sent along are closed.
    /// Only trust messages for which `isAuthorized(uid:)` holds.
    public func receive() -> [(message: String, pid: Int32, uid: UInt32)] {
        var result: [(message: String, pid: Int32, uid: UInt32)] = []
        var buffer = [CChar](repeating: 0, count: NotifySocket.maxMessageSize + 1)
        while result.count < NotifySocket.maxMessagesPerReceive {
            var pid: pid_t = 0
            var uid: uid_t = 0
            let n = ring_recv_notify(fd, &buffer, NotifySocket.maxMessageSize, &pid, &uid)
            if n < 0 { break } // EAGAIN: drained (anything else: nothing more to read now)
            let message = buffer.withUnsafeBufferPointer { raw in
                raw.withMemoryRebound(to: UInt8.self) { String(decoding: $0[0..<n], as: UTF8.self) }
            }
            result.append((message, pid, uid))
        }
        return result
    }

    /// Messages are accepted from our own effective uid and from root only.
    public static func isAuthorized(uid: UInt32) -> Bool {
        uid == geteuid() || uid == 0
    }
}
