import Glibc

/// CPU time and memory of the processes in a set of process groups, summed from /proc.
/// (With delegated cgroups the instance cgroups' cpu.stat and memory.current would be
/// exact; until then a process group is what an instance owns.)
///
/// CPU: utime+stime of every live member, plus cutime+cstime (children it has reaped),
/// so work done by short-lived helpers counts. Memory: PSS from smaps_rollup (shared pages
/// split between sharers, so forked workers are not counted N times), else RSS.
public struct ProcessMetrics: Equatable, Sendable {
    public var cpuNSec: UInt64 = 0
    public var memoryBytes: UInt64 = 0

    public init(cpuNSec: UInt64 = 0, memoryBytes: UInt64 = 0) {
        self.cpuNSec = cpuNSec
        self.memoryBytes = memoryBytes
    }

    /// One pass over /proc.
    public static func of(processGroups groups: Set<Int32>) -> ProcessMetrics {
        var total = ProcessMetrics()
        guard !groups.isEmpty, let dir = opendir("/proc") else { return total }
        defer { closedir(dir) }
        let ticks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), pid > 0, let stat = readSmallFile("/proc/\(pid)/stat"),
                  let fields = statFields(stat), fields.count > 21,
                  let pgrp = Int32(fields[2]), groups.contains(pgrp) else { continue }
            // fields[0] is field 3 of proc(5) ("state"): field n is fields[n - 3].
            let cpuTicks = [11, 12, 13, 14].reduce(UInt64(0)) { $0 &+ (UInt64(fields[$1]) ?? 0) }
            total.cpuNSec &+= cpuTicks &* (1_000_000_000 / ticks)
            if let pss = proportionalSetSize(pid) {
                total.memoryBytes &+= pss
            } else {
                total.memoryBytes &+= (UInt64(fields[21]) ?? 0) &* pageSize
            }
        }
        return total
    }

    /// The fields after "pid (comm)": comm may hold spaces and parentheses, so split after
    /// the last ')'.
    static func statFields(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// "Pss:  1234 kB" from /proc/PID/smaps_rollup, in bytes.
    private static func proportionalSetSize(_ pid: Int32) -> UInt64? {
        guard let text = readSmallFile("/proc/\(pid)/smaps_rollup", limit: 4096) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Pss:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = UInt64(parts[1]) { return kb * 1024 }
        }
        return nil
    }
}

/// The start of a small file (a /proc entry), or nil if it cannot be read.
func readSmallFile(_ path: String, limit: Int = 1024) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: limit)
    var count = 0
    while count < limit {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, limit - count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        count += n
    }
    return String(decoding: buffer[..<count], as: UTF8.self)
}
