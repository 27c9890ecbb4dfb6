import Glibc
import RingmasterCore
import Systemd

/// The daemon's listening sockets, by config name, and where each came from:
///
/// - `systemd = "NAME"`: the fd systemd passed with FileDescriptorName=NAME (a `.socket` unit,
///   or `systemd-socket-activate --fdname=NAME`). Passed only when the daemon starts.
/// - `listen = "ADDRESS"`: bound by ringmasterd itself and kept in systemd's fd store
///   (`FDSTORE=1`, `FDNAME=ringmasterd/bound/<socket>`), so that the next ringmasterd —
///   after `systemctl --user restart ringmaster`, or a crash and `Restart=` — gets the very
///   same listening socket back instead of binding anew: the connections that queue up in
///   its backlog meanwhile are served, none is refused. A stored fd is reused only when
///   getsockname() still says the configured address; otherwise it is dropped from the
///   store (`FDSTOREREMOVE=1`) and the address bound anew.
///
/// The fd-store names all start with `fdStorePrefix`; systemd puts them in $LISTEN_FDNAMES
/// beside the socket units' FileDescriptorName= values, and the prefix tells them apart.
/// ("/" is valid in an FDNAME, and nobody names a socket unit's fd "ringmasterd/…".)
///
/// A value owned by the Daemon (the supervisor only gets the fds by name): `reload(to:)`
/// closes the sockets a new config drops; the daemon keeps the rest open until it exits
/// (`closeAll()` closes them all, for a set that goes away earlier).
public struct SocketSet: Sendable {
    public enum Origin: Equatable, Sendable {
        /// passed by systemd with this FileDescriptorName=
        case activation(String)
        /// bound by an earlier ringmasterd, handed back by systemd's fd store
        case fdStore
        /// bound by this ringmasterd
        case bound
    }

    public struct Socket: Equatable, Sendable {
        public var fd: Int32
        public var source: SocketConfig.Source
        public var origin: Origin
    }

    public static let fdStorePrefix = "ringmasterd/bound/"

    /// The FDNAME under which the socket called `socket` in the config is stored.
    public static func fdStoreName(_ socket: String) -> String { fdStorePrefix + socket }

    public private(set) var sockets: [String: Socket] = [:]

    /// name → fd, for the supervisor's spawns.
    public var fds: [String: Int32] { sockets.mapValues(\.fd) }

    public init() {}

    // MARK: - start

    /// The sockets of `config` at start. `passed` is every fd systemd passed
    /// (`SystemdNotify.listenFDs()`): socket units' fds by FileDescriptorName=, fd-store fds
    /// by FDNAME. `systemd` sockets take their fd from `passed` (an error lists the names
    /// that were passed when one is missing); `listen` sockets reuse their stored fd when its
    /// address still matches, else are bound and pushed to the fd store. Stored fds no socket
    /// wants are dropped from the store and closed; passed fds nobody uses are closed.
    /// Throws one error listing every socket that could not be had; then nothing was sent to
    /// systemd and every socket bound here is closed again. `report` gets one line per
    /// decision, for the log.
    public static func open(_ config: [SocketConfig], passed: [(fd: Int32, name: String)],
                            report: (String) -> Void = { _ in }) throws(RuntimeError) -> SocketSet {
        var activation: [(fd: Int32, name: String)] = []
        var stored: [(fd: Int32, socket: String)] = []
        for p in passed {
            if p.name.hasPrefix(fdStorePrefix) { stored.append((p.fd, String(p.name.dropFirst(fdStorePrefix.count)))) }
            else { activation.append(p) }
        }
        var used = Set<Int32>()
        var set = SocketSet()
        var batch = BindBatch()
        var fromStore: [String: String] = [:]  // socket → the stored name its fd came from

        // Pass 1: systemd sockets, and listen sockets whose stored fd (same name) still fits.
        for socket in config {
            switch socket.source {
            case let .systemd(name):
                if let p = activation.first(where: { $0.name == name && !used.contains($0.fd) }) {
                    used.insert(p.fd)
                    set.sockets[socket.name] = Socket(fd: p.fd, source: socket.source, origin: .activation(name))
                    batch.notes.append("socket \(socket.name): fd \"\(name)\" from systemd")
                } else {
                    let names = Array(Set(activation.map(\.name))).sorted().map { "\"\($0)\"" }
                    batch.problems.append("socket \(socket.name): systemd passed no socket named \"\(name)\" (passed: "
                                    + (names.isEmpty ? "none" : names.joined(separator: ", ")) + ")")
                }
            case let .listen(address):
                if let s = stored.first(where: { $0.socket == socket.name && !used.contains($0.fd) }) {
                    if socketMatches(s.fd, address) {
                        used.insert(s.fd)
                        set.sockets[socket.name] = Socket(fd: s.fd, source: socket.source, origin: .fdStore)
                        fromStore[socket.name] = s.socket
                        batch.notes.append("socket \(socket.name): \(address) taken back from systemd's fd store")
                    } else {
                        batch.notes.append("socket \(socket.name): the stored socket is not \(address) any more: binding anew")
                    }
                }
            }
        }
        // Pass 2: the other listen sockets: a stored fd under another name with this address
        // (a renamed socket), else bind.
        for socket in config where set.sockets[socket.name] == nil {
            guard case let .listen(address) = socket.source else { continue }
            if let s = stored.first(where: { !used.contains($0.fd) && socketMatches($0.fd, address) }) {
                used.insert(s.fd)
                set.sockets[socket.name] = Socket(fd: s.fd, source: socket.source, origin: .fdStore)
                fromStore[socket.name] = s.socket
                batch.notes.append("socket \(socket.name): \(address) taken back from systemd's fd store (stored as \(s.socket))")
                continue
            }
            if let bound = batch.bind(socket, address) { set.sockets[socket.name] = bound }
        }
        try batch.finish(report)

        // The fd store. It stays as it is only for a socket whose fd came back under its own
        // name, alone; every other stored name is removed (FDSTOREREMOVE goes by name: all fds
        // of that name), and every socket we bound or took back otherwise is stored (again).
        var storedCount: [String: Int] = [:]
        for s in stored { storedCount[s.socket, default: 0] += 1 }
        func inPlace(_ name: String) -> Bool { fromStore[name] == name && storedCount[name] == 1 }
        for name in storedCount.keys.sorted() where !inPlace(name) {
            removeFromStore(name)
            if set.sockets[name] == nil {
                report("socket \(name): not in the config any more: dropped from systemd's fd store")
            }
        }
        for (name, socket) in set.sockets.sorted(by: { $0.key < $1.key }) {
            if case .activation = socket.origin { continue }
            if !inPlace(name) { store(socket.fd, as: name, report: report) }
        }
        for p in passed where !used.contains(p.fd) { close(p.fd) }
        applyModes(config, set.sockets)
        return set
    }

    /// Every unix path socket of ours (bound, or back from the fd store) gets its configured
    /// mode — a reload may have changed only that — and is registered for removal.
    private static func applyModes(_ config: [SocketConfig], _ sockets: [String: Socket]) {
        for socket in config {
            guard case let .listen(.unix(path)) = socket.source, let s = sockets[socket.name],
                  !isActivation(s.origin) else { continue }
            UnixSocketFiles.adopt(path)
            chmod(path, mode_t(socket.mode ?? SocketConfig.defaultMode))
        }
    }


    // MARK: - reload

    /// Applies the sockets of a reloaded config: unchanged sockets keep their fd; new
    /// `listen` sockets are bound and stored; removed ones are dropped from the store and
    /// closed; a socket whose address changed is bound anew; a renamed one keeps its fd. A new
    /// `systemd` socket can only reuse an fd passed at start that is still in use (systemd
    /// passes its sockets once): else it is an error.
    /// All or nothing: when anything fails, this throws one error listing every problem and
    /// the set is as before (whatever was bound here is closed again).
    /// Returns the names of the sockets whose fd is new (added or bound anew): every service
    /// listing one of them must restart to get it (its own config may be unchanged).
    public mutating func reload(to config: [SocketConfig],
                                report: (String) -> Void = { _ in }) throws(RuntimeError) -> Set<String> {
        var next: [String: Socket] = [:]
        var kept = Set<String>()          // old names whose fd lives on (maybe under a new name)
        var batch = BindBatch()
        var storeOps: [(remove: String?, store: String?)] = []

        for socket in config {
            if let old = sockets[socket.name], old.source == socket.source {
                next[socket.name] = old
                kept.insert(socket.name)
            }
        }
        for socket in config where next[socket.name] == nil {
            // An fd with the same source under another name, or under this name before a change.
            let donor = sockets.first { name, s in
                !kept.contains(name) && s.source == socket.source && config.first(where: { $0.name == name })?.source != s.source
            }
            if let (oldName, s) = donor {
                kept.insert(oldName)
                next[socket.name] = s
                if !Self.isActivation(s.origin) { storeOps.append((remove: oldName, store: socket.name)) }
                batch.notes.append("socket \(socket.name): keeps the socket of \(oldName)")
                continue
            }
            switch socket.source {
            case let .systemd(name):
                batch.problems.append("socket \(socket.name): systemd passes its sockets only when ringmasterd starts; "
                                + "restart ringmaster to take \"\(name)\"")
            case let .listen(address):
                if let bound = batch.bind(socket, address) {
                    next[socket.name] = bound
                    storeOps.append((remove: nil, store: socket.name))
                }
            }
        }
        try batch.finish(report)

        var changed = Set<String>()
        for (name, s) in next where sockets[name]?.fd != s.fd { changed.insert(name) }
        for (name, old) in sockets where !kept.contains(name) {
            if !Self.isActivation(old.origin) && !storeOps.contains(where: { $0.remove == name }) {
                storeOps.append((remove: name, store: nil))
            }
            close(old.fd)
            if case let .listen(.unix(path)) = old.source, !Self.isActivation(old.origin) { UnixSocketFiles.release(path) }
            report("socket \(name): closed")
        }
        Self.applyModes(config, next)
        // Removals first: FDSTOREREMOVE goes by name.
        for op in storeOps { if let name = op.remove { Self.removeFromStore(name) } }
        for op in storeOps {
            if let name = op.store, let s = next[name] { Self.store(s.fd, as: name, report: report) }
        }
        sockets = next
        return changed
    }

    /// Closes every socket (the daemon's copies; systemd's fd store keeps its own) and removes
    /// the files of the unix ones it bound.
    public mutating func closeAll() {
        for s in sockets.values {
            close(s.fd)
            if case let .listen(.unix(path)) = s.source, !Self.isActivation(s.origin) { UnixSocketFiles.release(path) }
        }
        sockets = [:]
    }

    // MARK: - helpers

    private static func isActivation(_ origin: Origin) -> Bool {
        if case .activation = origin { return true }
        return false
    }

    private static func store(_ fd: Int32, as socket: String, report: (String) -> Void) {
        if SystemdNotify.send("FDSTORE=1\nFDNAME=\(fdStoreName(socket))", fds: [fd]) {
            report("socket \(socket): kept in systemd's fd store as \(fdStoreName(socket))")
        }
    }

    private static func removeFromStore(_ socket: String) {
        SystemdNotify.send("FDSTOREREMOVE=1\nFDNAME=\(fdStoreName(socket))")
    }
}

/// What an open or a reload binds, all or nothing: every problem is collected, and on any,
/// every fd bound so far is closed and nothing is reported as done.
private struct BindBatch {
    var problems: [String] = []
    var notes: [String] = []
    private var bound: [Int32] = []
    private var boundPaths: [String] = []

    mutating func bind(_ socket: SocketConfig, _ address: ListenAddress) -> SocketSet.Socket? {
        do {
            let fd = try bindListenSocket(address, mode: socket.mode)
            bound.append(fd)
            if case let .unix(path) = address { boundPaths.append(path) }
            notes.append("socket \(socket.name): bound \(address)")
            return SocketSet.Socket(fd: fd, source: socket.source, origin: .bound)
        } catch {
            problems.append("socket \(socket.name): \(error)")
            return nil
        }
    }

    func finish(_ report: (String) -> Void) throws(RuntimeError) {
        if !problems.isEmpty {
            for fd in bound { close(fd) }
            for path in boundPaths { UnixSocketFiles.release(path) }
            throw RuntimeError(problems.joined(separator: "\n"))
        }
        notes.forEach(report)
    }
}

/// Whether `fd` is a listening stream socket bound to `address` (getsockname). A unix
/// socket also needs its file still in place: a socket whose file was removed cannot be
/// reached by anyone.
func socketMatches(_ fd: Int32, _ address: ListenAddress) -> Bool {
    func intOption(_ option: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, option, &value, &length) == 0 ? value : nil
    }
    guard intOption(SO_TYPE) == Int32(SOCK_STREAM.rawValue), intOption(SO_ACCEPTCONN) == 1 else { return false }
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let ok = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { return false }
    return withUnsafeBytes(of: &storage) { raw -> Bool in
        let family = Int32(raw.load(as: sa_family_t.self))
        switch address {
        case let .tcp4(host, port):
            guard family == AF_INET, Int(length) >= MemoryLayout<sockaddr_in>.size else { return false }
            let sa = raw.load(as: sockaddr_in.self)
            var want = in_addr()
            guard inet_pton(AF_INET, host, &want) == 1 else { return false }
            return UInt16(bigEndian: sa.sin_port) == port && sa.sin_addr.s_addr == want.s_addr
        case let .tcp6(host, port):
            guard family == AF_INET6, Int(length) >= MemoryLayout<sockaddr_in6>.size else { return false }
            var sa = raw.load(as: sockaddr_in6.self)
            var want = in6_addr()
            guard inet_pton(AF_INET6, host, &want) == 1 else { return false }
            let same = withUnsafeBytes(of: &sa.sin6_addr) { a in withUnsafeBytes(of: &want) { b in a.elementsEqual(b) } }
            return UInt16(bigEndian: sa.sin6_port) == port && same
        case let .unix(path):
            guard family == AF_UNIX else { return false }
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return false }
            return unixName(raw, length) == Array(path.utf8)
        case let .abstract(name):
            guard family == AF_UNIX else { return false }
            return unixName(raw, length) == [0] + Array(name.utf8)
        }
    }
}

/// The sun_path bytes of a sockaddr_un of `length` (a path without its trailing NULs;
/// an abstract name with its leading NUL).
private func unixName(_ raw: UnsafeRawBufferPointer, _ length: socklen_t) -> [UInt8] {
    let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
    guard Int(length) > offset else { return [] }
    var bytes = Array(raw[offset..<min(Int(length), raw.count)])
    if bytes.first != 0 { while bytes.last == 0 { bytes.removeLast() } }
    return bytes
}
