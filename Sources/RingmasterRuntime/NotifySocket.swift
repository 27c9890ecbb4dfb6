import CRingShims
import Glibc
import RingmasterCore

/// The daemon's private sd_notify endpoint (one for every instance: the Supervisor attributes
/// each datagram by its sender): a unix datagram socket bound to a path in the daemon's
/// notify directory (`NotifyDirectory`: `$XDG_RUNTIME_DIR/ringmaster`, mode 0700), given to
/// every child as NOTIFY_SOCKET. No other uid can enter that directory, so none can send to
/// the socket or take its name first (abstract names could be squatted and flooded by any
/// local user). SO_PASSCRED makes the kernel attach the sender's pid and uid to every
/// datagram, so a message can be attributed (`acceptsNotify`). Owning: deinit closes the fd
/// and removes the file.
public final class NotifySocket {
    public let fd: Int32
    /// The value for the child's NOTIFY_SOCKET: the socket's path.
    public let address: String

    /// systemd's limit for a notify datagram (NOTIFY_BUFFER_MAX); longer ones are cut.
    public static let maxMessageSize = 4096
    /// At most this many datagrams per `receive()`; the fd stays readable if more wait.
    public static let maxMessagesPerReceive = 1024

    private static var counter: UInt64 = 0

    /// A socket in the daemon's notify directory (made on first use).
    public convenience init() throws(SocketError) {
        try self.init(directory: try NotifyDirectory.shared())
    }

    /// A socket at `directory/notify.<daemon pid>.<counter>`. `directory` must be one only
    /// this uid can write in: a file already at that name is a leftover of a dead daemon that
    /// had our pid, and is replaced.
    public init(directory: String) throws(SocketError) {
        NotifySocket.counter += 1
        let path = "\(directory)/notify.\(getpid()).\(NotifySocket.counter)"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", address: path, errno: errno) }
        var one: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let e = errno
            close(fd)
            throw SocketError("setsockopt SO_PASSCRED", address: path, errno: e)
        }
        guard var (sa, length) = unixAddress(Array(path.utf8)) else {
            close(fd)
            throw SocketError("bind", address: path, errno: ENAMETOOLONG)
        }
        unlink(path)
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard r == 0 else {
            let e = errno
            close(fd)
            throw SocketError("bind", address: path, errno: e)
        }
        self.fd = fd
        self.address = path
    }

    deinit {
        close(fd)
        unlink(address)
    }

    /// Drains the pending datagrams without blocking, each with the sender's pid and uid
    /// (pid 0 / uid UInt32.max when no credentials came along). Fds sent along are closed.
    /// Only trust messages `InstanceProcess.acceptsNotify` accepts.
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

    /// What /proc says of a message's sender, for `NotifyAccess.accepts`: its cgroup directory
    /// (when `withCgroup`), process group and ancestors (at most 64). Empty for a process
    /// that is gone.
    public static func sender(pid: Int32, uid: UInt32, withCgroup: Bool) -> NotifyAccess.Sender {
        var sender = NotifyAccess.Sender(pid: pid, uid: uid)
        guard pid > 0 else { return sender }
        let group = getpgid(pid)
        if group > 0 { sender.processGroup = group }
        if withCgroup { sender.cgroup = cgroupDirectory(ofPID: pid) }
        var p = pid
        while sender.ancestors.count < 64, let parent = parentPID(of: p), parent > 1 {
            sender.ancestors.append(parent)
            p = parent
        }
        return sender
    }

    /// The ppid field of /proc/PID/stat (after the last ')': the name may hold anything).
    static func parentPID(of pid: Int32) -> Int32? {
        guard let stat = readSmallFile("/proc/\(pid)/stat", limit: 4096), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }
}

extension InstanceProcess {
    /// Whether a notify message from `pid` (uid `uid`, from SCM_CREDENTIALS) speaks for this
    /// instance: `NotifyAccess.accepts` on what the daemon and /proc know.
    func acceptsNotify(pid senderPID: Int32, uid: UInt32) -> Bool {
        let instance = NotifyAccess.Instance(mainPID: pid, processGroup: pgid, cgroup: cgroup?.path)
        var sender = NotifyAccess.Sender(pid: senderPID, uid: uid)
        if NotifyAccess.needsFacts(senderPID: senderPID, for: instance) {
            sender = NotifySocket.sender(pid: senderPID, uid: uid, withCgroup: instance.cgroup != nil)
        }
        return NotifyAccess.accepts(sender, for: instance, daemonUID: geteuid())
    }
}

/// The directory of the daemon's notify sockets: `$XDG_RUNTIME_DIR/ringmaster`, mode 0700,
/// made by the daemon (an existing one must be a directory of ours; its mode is set back to
/// 0700). Without a usable XDG_RUNTIME_DIR (unset, not absolute, not ours, or too long a path
/// for a socket), `/run/user/<uid>` if that is ours and 0700, else a fresh private directory
/// `$TMPDIR` (or /tmp) `/ringmaster-<uid>.XXXXXX` from mkdtemp, removed at exit. The daemon's
/// own socket (`notify.<pid>.*`) is removed at exit.
public enum NotifyDirectory {
    private static var cached: String?
    private static var temporary = false
    /// The directory is a fresh temporary one (no usable XDG_RUNTIME_DIR): nothing in it
    /// outlives this daemon.
    public static var isTemporary: Bool { temporary }

    /// The directory, made on first use (and cleaned up at exit).
    public static func shared() throws(SocketError) -> String {
        if let cached { return cached }
        let runtime = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) }
        var made: String?
        for base in candidates(runtimeDirectory: runtime, uid: geteuid()) {
            if let dir = try? privateDirectory(base + "/ringmaster") { made = dir; break }
        }
        if made == nil {
            made = try temporaryDirectory()
            temporary = true
        }
        cached = made
        atexit { NotifyDirectory.cleanUp() }
        return made!
    }

    /// Where to look, in order (pure): XDG_RUNTIME_DIR when absolute and short enough for a
    /// socket path below it, then /run/user/<uid>.
    public static func candidates(runtimeDirectory: String?, uid: UInt32) -> [String] {
        var out: [String] = []
        // "/ringmaster/notify.<pid>.<counter>" needs up to ~45 bytes of sun_path's 107.
        if let r = runtimeDirectory, r.hasPrefix("/"), r.utf8.count <= 60 {
            out.append(r.count > 1 && r.hasSuffix("/") ? String(r.dropLast()) : r)
        }
        if !out.contains("/run/user/\(uid)") && ownedPrivateDirectory("/run/user/\(uid)") { out.append("/run/user/\(uid)") }
        return out
    }

    /// Removes this daemon's sockets still there (and the temporary directory, if it made one).
    public static func cleanUp() {
        guard let dir = cached else { return }
        let prefix = Array("notify.\(getpid()).".utf8)
        if let d = opendir(dir) {
            var names: [String] = []
            while let entry = readdir(d) {
                let name: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
                if name.starts(with: prefix) { names.append(String(decoding: name, as: UTF8.self)) }
            }
            closedir(d)
            for name in names { unlink(dir + "/" + name) }
        }
        if temporary { rmdir(dir) }
    }

    /// `path` as a directory only we can enter: made 0700, or an existing directory (not a
    /// symlink) owned by us, its mode set to 0700.
    static func privateDirectory(_ path: String) throws(SocketError) -> String {
        if mkdir(path, 0o700) == 0 { return path }
        let e = errno
        guard e == EEXIST else { throw SocketError("mkdir", address: path, errno: e) }
        var st = stat()
        guard lstat(path, &st) == 0 else { throw SocketError("stat", address: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid() else {
            throw SocketError("mkdir", address: path, errno: EEXIST)
        }
        if st.st_mode & 0o7777 != 0o700, chmod(path, 0o700) != 0 {
            throw SocketError("chmod", address: path, errno: errno)
        }
        return path
    }

    private static func ownedPrivateDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR && st.st_uid == geteuid() && st.st_mode & 0o077 == 0
    }

    private static func temporaryDirectory() throws(SocketError) -> String {
        var base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        if !base.hasPrefix("/") || base.utf8.count > 50 { base = "/tmp" }
        var template = Array("\(base)/ringmaster-\(geteuid()).XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SocketError("mkdtemp", address: "\(base)/ringmaster-\(geteuid()).XXXXXX", errno: errno)
        }
        return String(cString: p)
    }
}
