import Glibc
import RingmasterCore

/// A failed socket operation on an address: "bind 127.0.0.1:8080: Address already in use".
public struct SocketError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var address: String
    public var errno: Int32

    public init(_ operation: String, address: String, errno: Int32) {
        self.operation = operation
        self.address = address
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(address): \(errnoString(errno))"
    }
}

/// Creates a listening SOCK_STREAM socket (CLOEXEC, blocking: the workers accept on it)
/// for `address` and returns its fd. TCP gets SO_REUSEADDR so a restarted daemon can bind
/// while old connections linger in TIME_WAIT; IPv6 is IPV6_V6ONLY so "[::]:80" and
/// "0.0.0.0:80" can coexist. A unix socket file left behind by a dead process (connect
/// refused) is removed first; a live one (connect accepted, or EAGAIN: its backlog is full)
/// is left alone and bind fails with EADDRINUSE. Nothing here blocks.
///
/// A unix socket at a path gets `mode` (default `SocketConfig.defaultMode`, 0600) before it
/// listens — no connection is accepted while it still has the umask's — and its file is
/// registered with `UnixSocketFiles`, which removes it when the socket is closed for good.
public func bindListenSocket(_ address: ListenAddress, mode: UInt32? = nil,
                             backlog: Int32 = SOMAXCONN) throws(SocketError) -> Int32 {
    let name = address.description
    func fail(_ operation: String, _ fd: Int32, _ code: Int32 = Glibc.errno) -> SocketError {
        if fd >= 0 { close(fd) }
        return SocketError(operation, address: name, errno: code)
    }

    switch address {
    case let .tcp4(host, port):
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &sa.sin_addr) == 1 else { throw fail("bind", -1, EINVAL) }
        return try bindAndListen(AF_INET, sa, socklen_t(MemoryLayout<sockaddr_in>.size), backlog,
                                 options: [(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR")], fail)

    case let .tcp6(host, port):
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = port.bigEndian
        guard inet_pton(AF_INET6, host, &sa.sin6_addr) == 1 else { throw fail("bind", -1, EINVAL) }
        return try bindAndListen(AF_INET6, sa, socklen_t(MemoryLayout<sockaddr_in6>.size), backlog,
                                 options: [(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"),
                                           (Int32(IPPROTO_IPV6), IPV6_V6ONLY, "IPV6_V6ONLY")], fail)

    case let .unix(path):
        guard let (sa, length) = unixAddress(Array(path.utf8)) else { throw fail("bind", -1, ENAMETOOLONG) }
        removeStaleSocket(path, sa, length)
        let fd = try bindAndListen(AF_UNIX, sa, length, backlog, options: [], fail) { () throws(SocketError) in
            guard chmod(path, mode_t(mode ?? SocketConfig.defaultMode)) == 0 else {
                let e = Glibc.errno
                unlink(path)
                throw SocketError("chmod", address: name, errno: e)
            }
        }
        UnixSocketFiles.adopt(path)
        return fd

    case let .abstract(abstractName):
        // Abstract names start with a NUL byte and have no file to clean up.
        guard let (sa, length) = unixAddress([0] + Array(abstractName.utf8)) else {
            throw fail("bind", -1, ENAMETOOLONG)
        }
        return try bindAndListen(AF_UNIX, sa, length, backlog, options: [], fail)
    }
}

/// A sockaddr_un for `pathBytes` (no terminating NUL needed) and its exact length, or nil
/// when the path does not fit in sun_path. Also used by NotifySocket.
func unixAddress(_ pathBytes: [UInt8]) -> (sockaddr_un, socklen_t)? {
    var sa = sockaddr_un()
    sa.sun_family = sa_family_t(AF_UNIX)
    let capacity = MemoryLayout.size(ofValue: sa.sun_path)
    // A filesystem path keeps room for a NUL so tools printing it see a C string.
    guard pathBytes.count < capacity || (pathBytes.first == 0 && pathBytes.count <= capacity) else { return nil }
    withUnsafeMutableBytes(of: &sa.sun_path) { raw in
        raw.copyBytes(from: pathBytes)
    }
    let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
    return (sa, socklen_t(offset + pathBytes.count))
}

/// socket → each option set to 1 → bind → listen, for any address family; the fd is closed
/// on failure (by `fail`).
private func bindAndListen<Address>(_ family: Int32, _ address: Address, _ length: socklen_t, _ backlog: Int32,
                                    options: [(level: Int32, option: Int32, name: String)],
                                    _ fail: (String, Int32, Int32) -> SocketError,
                                    afterBind: () throws(SocketError) -> Void = {}) throws(SocketError) -> Int32 {
    var sa = address
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw fail("socket", -1, Glibc.errno) }
    for o in options {
        guard setFlag(fd, o.level, o.option) else { throw fail("setsockopt " + o.name, fd, Glibc.errno) }
    }
    let r = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard r == 0 else { throw fail("bind", fd, Glibc.errno) }
    do { try afterBind() } catch {
        close(fd)
        throw error
    }
    guard listen(fd, backlog) == 0 else { throw fail("listen", fd, Glibc.errno) }
    return fd
}

/// Unlinks `path` if it is a socket nobody listens on any more (connect refused). The probe
/// is a non-blocking connect: a listener whose backlog is full (anyone can make one in a
/// shared directory) answers EAGAIN at once — live, left alone — where a blocking connect
/// would wait for it without end, on the daemon's loop.
private func removeStaleSocket(_ path: String, _ address: sockaddr_un, _ length: socklen_t) {
    var st = stat()
    guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return }
    let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard probe >= 0 else { return }
    defer { close(probe) }
    var sa = address
    let r = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, length) }
    }
    if r < 0 && (errno == ECONNREFUSED || errno == ENOENT) {
        unlink(path)
    }
}

private func setFlag(_ fd: Int32, _ level: Int32, _ option: Int32) -> Bool {
    var one: Int32 = 1
    return setsockopt(fd, level, option, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
}

/// The files of the unix listen sockets this daemon holds (bound here, or taken back from
/// systemd's fd store): each is removed when its socket is closed for good — removed from
/// the config by a reload (`release`), or at exit (`removeAll`, run by atexit). A daemon
/// killed with SIGKILL leaves them; the next one replaces a stale file when it binds.
public enum UnixSocketFiles {
    private static var paths: Set<String> = []
    private static var registered = false

    /// Remembers `path` as ours (once per path).
    public static func adopt(_ path: String) {
        paths.insert(path)
        if !registered {
            registered = true
            atexit { UnixSocketFiles.removeAll() }
        }
    }

    /// Removes `path` (if it is still a socket) and forgets it.
    public static func release(_ path: String) {
        guard paths.remove(path) != nil else { return }
        removeIfSocket(path)
    }

    public static func removeAll() {
        for path in paths { removeIfSocket(path) }
        paths = []
    }

    /// The paths held now (for tests).
    public static var held: Set<String> { paths }

    private static func removeIfSocket(_ path: String) {
        var st = stat()
        if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
    }
}
