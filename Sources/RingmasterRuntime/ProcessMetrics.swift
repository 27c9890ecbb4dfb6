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
                  let stat = readSmallFile("/proc/\(pid)/stat"),
                  let fields = statFields(stat), fields.count > 21 else { continue }
            // fields[0] is field 3 of proc(5) ("state"): field n is fields[n - 3].
            let cpuTicks = [11, 12, 13, 14].reduce(UInt64(0)) { $0 &+ (UInt64(fields[$1]) ?? 0) }
            total.cpuNSec &+= cpuTicks &* (1_000_000_000 / ticks)
            // RSS (field 24): one read we already did. PSS (smaps_rollup) would split shared
            // pages fairly but walks every page table: ~150 µs a process, on every status call.
            total.memoryBytes &+= (UInt64(fields[21]) ?? 0) &* pageSize
            if descendants { queue += children(of: pid) }
        }
        return total
    }

    /// The children of every thread of `pid`.
    static func children(of pid: Int32) -> [Int32] {
        guard let dir = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(dir) }
        var result: [Int32] = []
        while let entry = readdir(dir) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard Int32(tid) != nil, let text = readSmallFile("/proc/\(pid)/task/\(tid)/children", limit: 65_536) else { continue }
            result += text.split(separator: " ").compactMap { Int32($0.trimmingSuffix()) }
        }
        return result
    }

    /// The fields after "pid (comm)": comm may hold spaces and parentheses, so split after
    /// the last ')'.
    static func statFields(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

}

/// The start of a small file (a /proc or cgroup entry, up to `limit` bytes), or nil if it
/// cannot be read. Reads through a 4 KiB stack buffer: the cost follows the file's size, not
/// the limit (a zeroed 1 MiB buffer per cgroup.procs read once made every status call ~7 ms).
func readSmallFile(_ path: String, limit: Int = 1024) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: min(max(limit, 1), 4096)) { chunk -> String? in
        var bytes: [UInt8] = []
        while bytes.count < limit {
            let n = read(fd, chunk.baseAddress!, min(chunk.count, limit - bytes.count))
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<n]))
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The target of a symbolic link (e.g. /proc/self/exe), or nil.
func readLink(_ path: String) -> String? {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buf, buf.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private extension Substring {
    func trimmingSuffix() -> Substring {
        var s = self
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return s
    }
}
