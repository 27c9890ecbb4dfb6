import Glibc

// The cgroup v2 files Cgroups.swift reads and writes: /proc/self/cgroup and mountinfo parsing,
// service names as directory names, cgroup.events and cpu.stat, and the small file helpers.

// MARK: - parsing (pure)

/// The path of the `0::/…` line of /proc/self/cgroup (the cgroup v2 hierarchy).
func ownCgroup2Path(procSelfCgroup: String) -> String? {
    for line in procSelfCgroup.split(separator: "\n") where line.hasPrefix("0::") {
        let path = String(line.dropFirst(3))
        return path.hasPrefix("/") ? path : nil
    }
    return nil
}

/// The first cgroup2 mount in /proc/self/mountinfo: its mount point and the cgroup path
/// its root corresponds to ("/" unless a cgroup namespace or bind mount says otherwise).
func cgroup2Mount(mountinfo: String) -> (point: String, root: String)? {
    for line in mountinfo.split(separator: "\n") {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS
        let fields = line.split(separator: " ")
        guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields.count > 4,
              fields[dash + 1] == "cgroup2" else { continue }
        return (unescapeMountField(fields[4]), unescapeMountField(fields[3]))
    }
    return nil
}

/// mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
func unescapeMountField(_ field: Substring) -> String {
    var bytes: [UInt8] = []
    let u = Array(field.utf8)
    var i = 0
    while i < u.count {
        if u[i] == UInt8(ascii: "\\"), i + 3 < u.count {
            let digits = u[(i + 1)...(i + 3)]
            if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                bytes.append(digits.reduce(0) { $0 &* 8 &+ ($1 - UInt8(ascii: "0")) })
                i += 4
                continue
            }
        }
        bytes.append(u[i])
        i += 1
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The cgroup directory of process `pid` (its /proc/PID/cgroup v2 line under the cgroup2
/// mount), or nil when it is gone or has none.
func cgroupDirectory(ofPID pid: Int32) -> String? {
    guard let text = readSmallFile("/proc/\(pid)/cgroup", limit: 8192), let own = ownCgroup2Path(procSelfCgroup: text),
          let mount = cgroup2MountOfThisProcess else { return nil }
    return cgroupDirectory(mount: mount, own: own)
}

/// The cgroup2 mount, read once.
let cgroup2MountOfThisProcess: (point: String, root: String)? =
    readSmallFile("/proc/self/mountinfo", limit: 1 << 20).flatMap { cgroup2Mount(mountinfo: $0) }

/// `mount.point` + `own` (relative to the mount's root), or nil if `own` is not below it.
func cgroupDirectory(mount: (point: String, root: String), own: String) -> String? {
    var relative = own
    if mount.root != "/" {
        guard own == mount.root || own.hasPrefix(mount.root + "/") else { return nil }
        relative = String(own.dropFirst(mount.root.count))
    }
    if relative == "/" { relative = "" }
    let point = mount.point.hasSuffix("/") ? String(mount.point.dropLast()) : mount.point
    return point + relative
}

/// A service name as a cgroup directory name: "_" in front where it could clash with an
/// interface file of the parent ("cgroup.*", "<controller>.*") or starts with "_" (cg_escape).
public func cgroupName(service: String) -> String {
    let controllers: Set<Substring> = ["cgroup", "cpu", "cpuacct", "cpuset", "io", "blkio", "memory", "devices",
                                       "pids", "rdma", "hugetlb", "misc", "freezer", "net_cls", "net_prio",
                                       "perf_event", "debug"]
    if service.hasPrefix("_") || service.hasPrefix(".") { return "_" + service }
    if let dot = service.firstIndex(of: "."), controllers.contains(service[..<dot]) { return "_" + service }
    if ["notify_on_release", "release_agent", "tasks"].contains(service) { return "_" + service }
    return service
}

/// "populated 1" of a cgroup.events read from offset 0; nil when unreadable.
func parsePopulated(_ events: String) -> Bool? {
    for line in events.split(separator: "\n") where line.hasPrefix("populated ") {
        return line.dropFirst("populated ".count) != "0"
    }
    return nil
}

/// usage_usec of a cpu.stat text, in ns.
func parseCPUUsage(_ stat: String) -> UInt64? {
    for line in stat.split(separator: "\n") where line.hasPrefix("usage_usec ") {
        return UInt64(line.dropFirst("usage_usec ".count)).map { $0 &* 1000 }
    }
    return nil
}

// MARK: - file helpers

/// The cgroupfs file operations, in one namespace.
enum CgroupFS {
    /// "populated" of a cgroup.events fd, read from offset 0 (which also re-arms its EPOLLPRI).
    static func readPopulated(fd: Int32) -> Bool? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return parsePopulated(String(decoding: buffer[0..<n], as: UTF8.self))
    }

    static func readCPUUsage(_ dir: String) -> UInt64? {
        readSmallFile(dir + "/cpu.stat", limit: 4096).flatMap(parseCPUUsage)
    }

    static func readMemoryCurrent(_ dir: String) -> UInt64? {
        readSmallFile(dir + "/memory.current", limit: 64).flatMap { UInt64(CgroupFS.trimmed($0)) }
    }

    /// Writes `text` in one write(2), as cgroupfs wants; false with errno set on failure.
    static func writeFile(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let bytes = Array(text.utf8)
        let n = write(fd, bytes, bytes.count)
        let e = errno
        close(fd)
        errno = e
        return n == bytes.count
    }

    /// mkdir; an existing directory is fine.
    static func makeDirectory(_ path: String) throws(RuntimeError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw RuntimeError("mkdir \(path)", errno: errno) }
    }

    /// rmdir; true when it is gone now.
    static func removeDirectory(_ path: String) -> Bool {
        rmdir(path) == 0 || errno == ENOENT
    }

    /// The names of the directories in `path` (the child cgroups).
    static func subdirectories(_ path: String) -> [String] {
        directoryEntries(opendir(path), directoriesOnly: true)
    }

    /// Every pid in the cgroup.procs of an open cgroup directory and in its descendants':
    /// relative opens, no path walk from the root of the hierarchy for each file (this runs
    /// per instance on every status call).
    static func processes(directory: Int32) -> [Int32] {
        var pids = pidList(readSmallFileBytes("cgroup.procs", limit: 1 << 20, relativeTo: directory) ?? [])
        let listing = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let stream = listing >= 0 ? fdopendir(listing) : nil
        if stream == nil, listing >= 0 { close(listing) }
        for name in directoryEntries(stream, directoriesOnly: true) {
            let sub = openat(directory, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard sub >= 0 else { continue }
            pids += processes(directory: sub)
            close(sub)
        }
        return pids
    }

    /// Without trailing newlines and spaces.
    static func trimmed(_ s: String) -> String {
        var t = Substring(s)
        while t.last == "\n" || t.last == " " { t = t.dropLast() }
        return String(t)
    }
}
