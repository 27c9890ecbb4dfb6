import CRingShims
import Glibc
import RingmasterCore
import Systemd

// Cgroup delegation: with `Delegate=yes` systemd hands ringmasterd its unit's cgroup v2
// directory, and ringmasterd gives every instance a sub-cgroup of its own, so that stopping
// an instance kills everything it started — a grandchild that called setsid() included —
// with one write to `cgroup.kill`. The layout under the unit's cgroup:
//
//   <own>/supervisor              ringmasterd itself (a leaf: cgroup v2's "no internal
//                                 processes" rule forbids processes beside child cgroups
//                                 that have controllers enabled)
//   <own>/services/<svc>/<N>      instance N of service <svc>; <svc> accumulates the CPU
//                                 time of every instance that ever ran (D-Bus CPUUsageNSec)
//
// <svc> is the service name, prefixed with "_" where it could clash with a cgroup interface
// file ("cgroup.procs", "memory.max", …), as systemd's cg_escape() does.
//
// Whether we are delegated: newer systemd versions mark a delegated cgroup with a
// `trusted.delegate` or `user.delegate` xattr, honoured when present; 252's user manager sets
// neither (checked), so the rule is: the cgroup is not the
// root, its cgroup.type is "domain", its directory, cgroup.procs and cgroup.subtree_control
// are writable by us, and ringmasterd is the only process in it. Under `Delegate=yes` all of
// that holds; a shell's or a test runner's cgroup fails the last test. (A unit without
// `Delegate=` whose cgroup happens to be writable — root, or a user manager's subtree —
// passes too; systemd still kills and removes our sub-cgroups with the unit, so nothing leaks.)

/// The daemon's delegated cgroup v2 subtree. Not thread-safe; lives on the loop's thread.
public final class CgroupTree {
    /// The daemon's own (the unit's) cgroup directory, e.g.
    /// /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/ringmaster.service
    public let path: String
    /// Removals waiting for an instance cgroup to empty, by path.
    private var pendingRemovals: [String: EmptyWatch] = [:]
    /// Controllers enabled for the instances (subset of cpu, memory, pids, io that we have).
    public private(set) var controllers: [String] = []

    static let supervisorLeaf = "supervisor"
    static let servicesDirectory = "services"
    /// Enabled below us when available, for memory.current & co. in the instances' cgroups.
    static let wantedControllers = ["cpu", "memory", "pids", "io"]

    /// A tree at `path` as it is, without moving anything (takeOver() does that; tests use this).
    init(path: String) { self.path = path }

    deinit {
        for source in pendingRemovals.values { source.cancel() }
    }

    /// Finds the daemon's cgroup v2 directory and, if it is delegated to us (see the rule
    /// above), moves the daemon into `<own>/supervisor` and enables the available controllers
    /// below `<own>`. Call once at start, before spawning anything.
    /// On failure: why not, for one log line ("cgroup not delegated (…): instances are tracked
    /// by process group").
    public static func takeOver() -> Result<CgroupTree, CgroupUnavailable> {
        guard let cgroupFile = readSmallFile("/proc/self/cgroup", limit: 16384),
              let own = ownCgroup2Path(procSelfCgroup: cgroupFile) else {
            return .failure(CgroupUnavailable("no cgroup v2 entry in /proc/self/cgroup"))
        }
        guard let mountinfo = readSmallFile("/proc/self/mountinfo", limit: 1 << 20),
              let mount = cgroup2Mount(mountinfo: mountinfo) else {
            return .failure(CgroupUnavailable("cgroup2 is not mounted"))
        }
        guard let directory = cgroupDirectory(mount: mount, own: own) else {
            return .failure(CgroupUnavailable("cgroup \(own) is outside the cgroup2 mount at \(mount.point)"))
        }
        if let problem = delegationProblem(directory, isRoot: own == "/") {
            return .failure(CgroupUnavailable("\(directory): \(problem)"))
        }
        let tree = CgroupTree(path: directory)
        do {
            try tree.moveSelfIntoLeaf()
        } catch {
            return .failure(CgroupUnavailable("\(error)"))
        }
        tree.enableControllers()
        return .success(tree)
    }

    /// Why `directory` is not ours to manage, or nil if it is (the rule at the top of this file).
    static func delegationProblem(_ directory: String, isRoot: Bool) -> String? {
        if isRoot { return "ringmasterd runs in the root cgroup" }
        let type = readSmallFile(directory + "/cgroup.type").map(CgroupFS.trimmed) ?? "domain"
        guard type == "domain" else { return "its cgroup.type is \"\(type)\", not \"domain\"" }
        for file in ["", "/cgroup.procs", "/cgroup.subtree_control"] where access(directory + file, W_OK) != 0 {
            return "\(file.isEmpty ? "the directory" : String(file.dropFirst())) is not writable (\(errnoString()))"
        }
        if hasDelegateMark(directory) { return nil }
        let procs = readSmallFileBytes(directory + "/cgroup.procs", limit: 65536) ?? []
        let others = pidList(procs).filter { $0 != getpid() }
        if !others.isEmpty {
            return "\(others.count) other process\(others.count == 1 ? "" : "es") share\(others.count == 1 ? "s" : "") it (no Delegate=yes?)"
        }
        return nil
    }

    /// The xattr newer systemd versions put on delegated cgroups (trusted.delegate, or
    /// user.delegate from an unprivileged manager); its absence proves nothing.
    private static func hasDelegateMark(_ directory: String) -> Bool {
        for name in ["trusted.delegate", "user.delegate"] {
            var value = [UInt8](repeating: 0, count: 8)
            let n = getxattr(directory, name, &value, value.count)
            if n == 1 && value[0] == UInt8(ascii: "1") { return true }
        }
        return false
    }

    private func moveSelfIntoLeaf() throws(RuntimeError) {
        let leaf = path + "/" + Self.supervisorLeaf
        try CgroupFS.makeDirectory(leaf)
        guard CgroupFS.writeFile(leaf + "/cgroup.procs", "\(getpid())") else {
            throw RuntimeError("moving ringmasterd into \(leaf)", errno: errno)
        }
        try CgroupFS.makeDirectory(path + "/" + Self.servicesDirectory)
    }

    /// cpu, memory, pids, io where the hierarchy gives them to us: enabled in `<own>` and in
    /// `<own>/services` (each service directory enables them for its instances when made).
    /// Best effort: without them cgroup.kill, cgroup.events and cpu.stat still work.
    private func enableControllers() {
        let available = Set((readSmallFile(path + "/cgroup.controllers") ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
        var enabled: [String] = []
        for c in Self.wantedControllers where available.contains(c) {
            if CgroupFS.writeFile(path + "/cgroup.subtree_control", "+" + c),
               CgroupFS.writeFile(path + "/" + Self.servicesDirectory + "/cgroup.subtree_control", "+" + c) {
                enabled.append(c)
            }
        }
        controllers = enabled
    }

    /// `<own>/services/<svc>`
    public func serviceDirectory(_ service: String) -> String {
        path + "/" + Self.servicesDirectory + "/" + cgroupName(service: service)
    }

    /// The cgroup for instance `index` of `service`: `<own>/services/<svc>/<index>`, made if
    /// missing (an existing one — a predecessor's leftovers still dying — is reused), with
    /// `limits` written into it (see `applyLimits`). Pass its `fd` as `SpawnRequest.cgroupFD`.
    /// Cancels a pending `removeWhenEmpty` of it.
    public func instance(service: String, index: Int,
                         limits: ResourceLimits = ResourceLimits()) throws(RuntimeError) -> InstanceCgroup {
        let serviceDir = serviceDirectory(service)
        if access(serviceDir, F_OK) != 0 {
            try CgroupFS.makeDirectory(path + "/" + Self.servicesDirectory)
            try CgroupFS.makeDirectory(serviceDir)
            for c in controllers { _ = CgroupFS.writeFile(serviceDir + "/cgroup.subtree_control", "+" + c) }
        }
        let dir = serviceDir + "/\(index)"
        pendingRemovals.removeValue(forKey: dir)?.cancel()
        let reused = access(dir, F_OK) == 0
        try CgroupFS.makeDirectory(dir)
        do {
            try applyLimits(limits, to: dir, service: service, reused: reused)
        } catch {
            if !reused { _ = CgroupFS.removeDirectory(dir) }
            throw error
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError("open \(dir)", errno: errno) }
        return InstanceCgroup(path: dir, fd: fd)
    }

    /// Writes `limits` into the instance cgroup `dir` before anything runs in it. A reused
    /// cgroup is first reset to the kernel's defaults (a reload may have removed a limit).
    /// A limit whose controller the cgroup lacks is an error, never silently skipped: first
    /// the controller is enabled from the top of our subtree down (`<own>`, `services`,
    /// `<svc>`), as systemd enables a controller for a unit that needs it — which works when
    /// our own cgroup was given it (`cgroup.controllers`); if it was not, the error says so.
    private func applyLimits(_ limits: ResourceLimits, to dir: String, service: String,
                             reused: Bool) throws(RuntimeError) {
        if reused {
            for d in ResourceLimits.cgroupDefaults { _ = CgroupFS.writeFile(dir + "/" + d.file, d.value) }
        }
        let settings = limits.cgroupSettings
        guard !settings.isEmpty else { return }
        var available = Self.controllers(of: dir)
        for s in settings where !available.contains(s.controller) {
            enableController(s.controller, service: service)
            available = Self.controllers(of: dir)
            guard available.contains(s.controller) else {
                let here = available.isEmpty ? "none" : available.sorted().joined(separator: " ")
                throw RuntimeError("\(s.key) needs the \(s.controller) controller, which this cgroup does not have "
                                   + "(controllers here: \(here))")
            }
        }
        for s in settings where !CgroupFS.writeFile(dir + "/" + s.file, s.value) {
            throw RuntimeError("\(s.key): writing \"\(s.value)\" to \(s.file)", errno: errno)
        }
    }

    /// `+controller` into the subtree_control of `<own>`, `<own>/services` and the service's
    /// directory, top down; best effort (applyLimits checks the result).
    private func enableController(_ controller: String, service: String) {
        for dir in [path, path + "/" + Self.servicesDirectory, serviceDirectory(service)] {
            guard CgroupFS.writeFile(dir + "/cgroup.subtree_control", "+" + controller) else { return }
        }
        if !controllers.contains(controller) { controllers.append(controller) }
    }

    /// The controllers a cgroup can use (its cgroup.controllers).
    static func controllers(of dir: String) -> Set<String> {
        Set((readSmallFile(dir + "/cgroup.controllers") ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
    }

    /// Why an instance with `limits` cannot start when the daemon has no delegated cgroup
    /// (`CgroupTree.takeOver()` failed); nil when it has no limits.
    public static func limitsProblemWithoutCgroup(_ limits: ResourceLimits) -> String? {
        guard let s = limits.cgroupSettings.first else { return nil }
        return "\(s.key) needs the \(s.controller) controller, which ringmasterd cannot use: "
            + "it has no delegated cgroup (see its start-up log)"
    }

    /// Removes `cgroup`'s directory now if it is empty, else once it is (watching its
    /// cgroup.events). Call after `kill()` or once the instance's process exited for good.
    /// The watch belongs to the tree, so the InstanceCgroup may be dropped meanwhile.
    public func removeWhenEmpty(_ cgroup: InstanceCgroup, loop: EventLoop) {
        let dir = cgroup.path
        pendingRemovals.removeValue(forKey: dir)?.cancel()
        if CgroupFS.removeDirectory(dir) { return }
        let events = open(dir + "/cgroup.events", O_RDONLY | O_CLOEXEC)
        guard events >= 0 else { return }
        let watch = EmptyWatch(fd: events)
        do {
            // kernfs signals a change of cgroup.events as EPOLLPRI (+EPOLLERR); reading the file
            // re-arms it.
            watch.source = try loop.onReadable(fd: events, events: UInt32(EPOLLPRI.rawValue)) { [weak self] _ in
                guard let self, CgroupFS.readPopulated(fd: events) != true, CgroupFS.removeDirectory(dir) else { return }
                pendingRemovals.removeValue(forKey: dir)?.cancel()
            }
        } catch {
            watch.cancel()
            return
        }
        pendingRemovals[dir] = watch
        // It may have emptied between the rmdir above and the watch.
        if CgroupFS.readPopulated(fd: events) != true, CgroupFS.removeDirectory(dir) {
            pendingRemovals.removeValue(forKey: dir)?.cancel()
        }
    }

    /// Instance cgroups waiting to be removed (for tests and diagnostics).
    public var pendingRemovalPaths: [String] { pendingRemovals.keys.sorted() }

    /// Removes a service's cgroup (a service removed by a reload): its instance directories
    /// that are empty, then itself if that left it empty. False if something still runs there.
    @discardableResult
    public func removeService(_ service: String) -> Bool {
        let dir = serviceDirectory(service)
        for sub in CgroupFS.subdirectories(dir) {
            pendingRemovals.removeValue(forKey: dir + "/" + sub)?.cancel()
            _ = CgroupFS.removeDirectory(dir + "/" + sub)
        }
        return CgroupFS.removeDirectory(dir) || access(dir, F_OK) != 0
    }

    /// CPU time (ns) of every process that ever ran in `service`'s cgroup, removed instance
    /// cgroups included; nil when it does not exist.
    public func cpuUsageNSec(service: String) -> UInt64? { CgroupFS.readCPUUsage(serviceDirectory(service)) }

    /// memory.current of `service`'s cgroup; nil without the memory controller.
    public func memoryCurrent(service: String) -> UInt64? { CgroupFS.readMemoryCurrent(serviceDirectory(service)) }
}

/// A cgroup.events watch and its fd.
private final class EmptyWatch {
    let fd: Int32
    var source: EventSource?
    init(fd: Int32) { self.fd = fd }
    func cancel() {
        source?.cancel()
        source = nil
    }
    deinit {
        source?.cancel()
        close(fd)
    }
}

/// Why the daemon does not manage cgroups (logged once at start).
public struct CgroupUnavailable: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// One instance's cgroup. Owns `fd` (closed on deinit); the directory outlives the object
/// (CgroupTree.removeWhenEmpty removes it).
public final class InstanceCgroup {
    public let path: String
    /// O_DIRECTORY|O_CLOEXEC, for clone3's CLONE_INTO_CGROUP (`SpawnRequest.cgroupFD`); -1
    /// once `releaseDirectory()` closed it after the spawn: an instance then costs the daemon
    /// no descriptor for its cgroup (10,000 instances fit a 20,000-descriptor limit), and each
    /// later use opens the directory for the time it takes.
    public private(set) var fd: Int32

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { releaseDirectory() }

    /// Closes the directory once the instance's process is in it.
    public func releaseDirectory() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// `body` with a descriptor of the directory: the held one, or one open for the call.
    private func withDirectory<T>(otherwise: T, _ body: (Int32) -> T) -> T {
        if fd >= 0 { return body(fd) }
        let d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { return otherwise }
        defer { close(d) }
        return body(d)
    }

    /// SIGKILL to every process in the cgroup and below, atomically (cgroup.kill, Linux ≥ 5.14);
    /// before 5.14, SIGKILL to each pid in cgroup.procs, repeated while new ones appear.
    /// False when nothing could be done (the cgroup is gone or not ours).
    @discardableResult
    public func kill() -> Bool {
        let k = withDirectory(otherwise: -1) { openat($0, "cgroup.kill", O_WRONLY | O_CLOEXEC) }
        if k >= 0 {
            defer { close(k) }
            if write(k, "1", 1) == 1 { return true }
        }
        var any = false
        for _ in 0..<16 {
            let pids = self.pids
            if pids.isEmpty { return true }
            if killMembers(pids) { any = true }
        }
        return any
    }

    /// SIGKILL to each of `pids` (a snapshot of cgroup.procs) that is still in this cgroup;
    /// true if any was signalled. By the time a pid is signalled its process may have exited
    /// and the pid gone to another process elsewhere: each pid is pinned with a pidfd first,
    /// then checked to be in this cgroup (or below), then signalled through the pidfd — so the
    /// signal reaches the process that was checked, or none. Without pidfds (Linux < 5.3), the
    /// check and a plain kill(2).
    func killMembers(_ pids: [Int32]) -> Bool {
        var any = false
        for pid in pids where pid != getpid() {
            let pidfd = ring_pidfd_open(pid)
            if pidfd < 0 && errno != ENOSYS { continue } // gone already
            defer { if pidfd >= 0 { close(pidfd) } }
            guard let theirs = cgroupDirectory(ofPID: pid), theirs == path || theirs.hasPrefix(path + "/") else { continue }
            let r = pidfd >= 0 ? ring_pidfd_send_signal(pidfd, SIGKILL) : Glibc.kill(pid, SIGKILL)
            if r == 0 { any = true }
        }
        return any
    }

    /// Whether a live process is in the cgroup or below ("populated" in cgroup.events);
    /// false when the cgroup is gone.
    public var isPopulated: Bool {
        let events = withDirectory(otherwise: -1) { openat($0, "cgroup.events", O_RDONLY | O_CLOEXEC) }
        guard events >= 0 else { return false }
        defer { close(events) }
        return CgroupFS.readPopulated(fd: events) ?? false
    }

    /// The pids in the cgroup and below.
    public var pids: [Int32] { withDirectory(otherwise: []) { CgroupFS.processes(directory: $0) } }

    /// usage_usec of cpu.stat, in ns (present without the cpu controller too).
    public var cpuUsageNSec: UInt64? { CgroupFS.readCPUUsage(path) }

    /// How many processes the kernel's OOM killer killed in this cgroup (`oom_kill` of
    /// memory.events); nil without the memory controller.
    public var oomKills: UInt64? {
        withDirectory(otherwise: nil) { readSmallFile("memory.events", limit: 1024, relativeTo: $0).flatMap(parseOOMKills) }
    }
}

/// `oom_kill N` of a memory.events text.
func parseOOMKills(_ events: String) -> UInt64? {
    for line in events.split(separator: "\n") where line.hasPrefix("oom_kill ") {
        return UInt64(line.dropFirst("oom_kill ".count))
    }
    return nil
}
