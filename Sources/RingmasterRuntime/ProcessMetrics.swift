import Glibc

/// CPU time and memory of a set of processes, summed from /proc: an instance's main process
/// and its descendants, or (delegated) exactly the pids in its cgroup. Memory is RSS, so pages
/// shared between forked workers count once per process (as `ps` shows them); with the memory
/// controller delegated, the D-Bus layer reads the cgroup's exact memory.current instead.
///
/// CPU: utime+stime of every live member, plus cutime+cstime (children it has reaped),
/// so work done by short-lived helpers counts.
public struct ProcessMetrics: Equatable, Sendable {
    public var cpuNSec: UInt64 = 0
    public var memoryBytes: UInt64 = 0

    public init(cpuNSec: UInt64 = 0, memoryBytes: UInt64 = 0) {
        self.cpuNSec = cpuNSec
        self.memoryBytes = memoryBytes
    }

    /// The given processes and, with `descendants`, everything below them (from
    /// /proc/PID/task/TID/children): a few reads per process, not a scan of all of /proc.
    public static func of(pids roots: [Int32], descendants: Bool) -> ProcessMetrics {
        var total = ProcessMetrics()
        var seen = Set<Int32>()
        var queue = roots
        let ticks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))
        while let pid = queue.popLast() {
            guard pid > 0, seen.insert(pid).inserted, seen.count <= 65_536,
                  let stat = readSmallFileBytes("/proc/\(pid)/stat"), let parsed = parseStat(stat) else { continue }
            total.cpuNSec &+= parsed.cpuTicks &* (1_000_000_000 / ticks)
            // RSS: from the read we already did. PSS (smaps_rollup) would split shared pages
            // fairly but walks every page table: ~150 µs a process, on every status call.
            total.memoryBytes &+= parsed.rssPages &* pageSize
            if descendants { queue += children(of: pid) }
        }
        return total
    }

    /// From /proc/PID/stat (proc(5)): utime + stime + cutime + cstime (fields 14–17, clock
    /// ticks; a negative value counts 0) and rss (field 24, pages). Parsed as bytes: this runs
    /// for every process of every service on each status call. comm (field 2) may hold spaces
    /// and parentheses, so fields are counted from the last ')'.
    static func parseStat(_ bytes: [UInt8]) -> (cpuTicks: UInt64, rssPages: UInt64)? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var field = 2
        var cpuTicks: UInt64 = 0
        var i = close + 1
        while i < bytes.count {
            if bytes[i] <= 32 { i += 1; continue } // separators: space, the final newline
            field += 1
            var value: UInt64 = 0
            var digits = true
            while i < bytes.count, bytes[i] > 32 {
                let d = bytes[i] &- UInt8(ascii: "0")
                if d < 10 { value = value &* 10 &+ UInt64(d) } else { digits = false }
                i += 1
            }
            if !digits { value = 0 }
            switch field {
            case 14...17: cpuTicks &+= value
            case 24: return (cpuTicks, value)
            default: break
            }
        }
        return nil
    }

    /// The children of every thread of `pid`.
    static func children(of pid: Int32) -> [Int32] {
        var result: [Int32] = []
        for tid in directoryEntries(opendir("/proc/\(pid)/task"), directoriesOnly: false) where Int32(tid) != nil {
            if let text = readSmallFileBytes("/proc/\(pid)/task/\(tid)/children", limit: 65_536) { result += pidList(text) }
        }
        return result
    }

}

/// The start of a small file (a /proc or cgroup entry, up to `limit` bytes), or nil if it
/// cannot be read. Reads through a 4 KiB stack buffer: the cost follows the file's size, not
/// the limit (a zeroed 1 MiB buffer per cgroup.procs read once made every status call ~7 ms).
func readSmallFile(_ path: String, limit: Int = 1024, relativeTo directory: Int32 = AT_FDCWD) -> String? {
    readSmallFileBytes(path, limit: limit, relativeTo: directory).map { String(decoding: $0, as: UTF8.self) }
}

/// `readSmallFile`'s bytes; `path` is relative to the `directory` fd when it is not absolute.
func readSmallFileBytes(_ path: String, limit: Int = 1024, relativeTo directory: Int32 = AT_FDCWD) -> [UInt8]? {
    let fd = openat(directory, path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: min(max(limit, 1), 4096)) { chunk -> [UInt8]? in
        var bytes: [UInt8] = []
        while bytes.count < limit {
            let n = read(fd, chunk.baseAddress!, min(chunk.count, limit - bytes.count))
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<n]))
        }
        return bytes
    }
}

/// The target of a symbolic link (e.g. /proc/self/exe), or nil.
func readLink(_ path: String) -> String? {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buf, buf.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The names in a directory stream (not "." and ".."), which this closes; [] for nil.
func directoryEntries(_ dir: OpaquePointer?, directoriesOnly: Bool) -> [String] {
    guard let dir else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        if directoriesOnly, entry.pointee.d_type != UInt8(DT_DIR) { continue }
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The pids in a whitespace-separated list (cgroup.procs, /proc/PID/task/TID/children).
func pidList(_ bytes: [UInt8]) -> [Int32] {
    var pids: [Int32] = []
    var value: Int32 = 0
    var inNumber = false
    for b in bytes {
        let d = b &- UInt8(ascii: "0")
        if d < 10 {
            let (next, overflow) = value.multipliedReportingOverflow(by: 10)
            value = overflow ? Int32.max : next.addingReportingOverflow(Int32(d)).partialValue
            inNumber = true
        } else {
            if inNumber { pids.append(value) }
            value = 0
            inNumber = false
        }
    }
    if inNumber { pids.append(value) }
    return pids
}
