// Per-instance resource limits (`memory-max`, `memory-high`, `cpu-weight`, `cpu-max`,
// `pids-max`): the values, their grammar, and the cgroup v2 files they become. Pure; the
// runtime (Cgroups.swift) writes `cgroupSettings` into each instance's cgroup before the
// instance's process is cloned into it.

public struct ResourceLimits: Equatable, Hashable, Sendable {
    public enum Size: Equatable, Hashable, Sendable, CustomStringConvertible {
        case bytes(UInt64)
        case infinity

        /// As cgroupfs takes it: bytes, or "max".
        public var cgroupValue: String {
            switch self {
            case let .bytes(n): return String(n)
            case .infinity: return "max"
            }
        }

        public var description: String {
            switch self {
            case let .bytes(n): return ResourceLimits.sizeText(n)
            case .infinity: return "infinity"
            }
        }
    }

    public var memoryMax: Size? = nil
    public var memoryHigh: Size? = nil
    /// cpu.weight, 1-10000
    public var cpuWeight: Int? = nil
    /// CPU time allowed per `cpuPeriod`, in µs (`cpu-max = "50%"`: 50000)
    public var cpuQuota: USec? = nil
    public var pidsMax: Int? = nil

    public init() {}

    public var isEmpty: Bool { self == ResourceLimits() }

    /// cpu.max's period: 100 ms, as systemd's CPUQuota= uses.
    public static let cpuPeriod: USec = 100_000
    public static let minimumMemory: UInt64 = 1 << 20
    public static let maximumCPUPercent = 100_000
    /// the kernel's largest pid_max
    public static let maximumPids = 1 << 22

    /// One cgroup v2 interface file a limit is written to.
    public struct Setting: Equatable, Sendable {
        /// the config key it comes from ("memory-max"), for messages
        public var key: String
        /// the controller the file belongs to ("memory")
        public var controller: String
        public var file: String
        public var value: String
    }

    /// What to write into an instance's cgroup, in this order. A memory limit also sets
    /// `memory.oom.group = 1`, so an OOM kill takes the whole instance, not one process of it.
    public var cgroupSettings: [Setting] {
        var out: [Setting] = []
        if let key = memoryMax != nil ? "memory-max" : memoryHigh != nil ? "memory-high" : nil {
            out.append(Setting(key: key, controller: "memory", file: "memory.oom.group", value: "1"))
        }
        if let memoryHigh { out.append(Setting(key: "memory-high", controller: "memory", file: "memory.high", value: memoryHigh.cgroupValue)) }
        if let memoryMax { out.append(Setting(key: "memory-max", controller: "memory", file: "memory.max", value: memoryMax.cgroupValue)) }
        if let cpuWeight { out.append(Setting(key: "cpu-weight", controller: "cpu", file: "cpu.weight", value: String(cpuWeight))) }
        if let cpuQuota { out.append(Setting(key: "cpu-max", controller: "cpu", file: "cpu.max", value: "\(cpuQuota) \(Self.cpuPeriod)")) }
        if let pidsMax { out.append(Setting(key: "pids-max", controller: "pids", file: "pids.max", value: String(pidsMax))) }
        return out
    }

    /// The files `cgroupSettings` may write, with the kernel's defaults: what a reused
    /// instance cgroup is reset to before the current limits are written.
    public static let cgroupDefaults: [(file: String, value: String)] = [
        ("memory.oom.group", "0"), ("memory.high", "max"), ("memory.max", "max"),
        ("cpu.weight", "100"), ("cpu.max", "max \(cpuPeriod)"), ("pids.max", "max"),
    ]

    // MARK: grammar

    /// `"512M"`, `"2G"`, `"1024K"`, `"3T"` (powers of 1024, either case), `"4096"` (bytes),
    /// `"infinity"`; at least `minimumMemory` (1M) so that a forgotten unit is caught.
    public static func parseSize(_ text: String, key: String) -> Result<Size, ConfigValueProblem> {
        if text == "infinity" { return .success(.infinity) }
        let expected = "\(key) must be a size like \"512M\", \"2G\", a number of bytes, or \"infinity\""
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        if let last = digits.last, let power = "KMGT".firstIndex(of: Character(last.uppercased())) {
            multiplier = 1 << (10 * UInt64("KMGT".distance(from: "KMGT".startIndex, to: power) + 1))
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(ConfigValueProblem("\(expected), not \"\(EnvFile.bounded(text))\""))
        }
        guard let n = UInt64(digits), case let (bytes, overflow) = n.multipliedReportingOverflow(by: multiplier),
              !overflow, bytes < UInt64(Int64.max) else {
            return .failure(ConfigValueProblem("\(key) \"\(EnvFile.bounded(text))\" is too large (write \"infinity\" for no limit)"))
        }
        return checkedSize(bytes, key: key, written: "\"\(text)\"")
    }

    /// A TOML integer: bytes.
    public static func size(bytes: Int64, key: String) -> Result<Size, ConfigValueProblem> {
        guard bytes >= 0 else { return .failure(ConfigValueProblem("\(key) must not be negative")) }
        return checkedSize(UInt64(bytes), key: key, written: String(bytes))
    }

    private static func checkedSize(_ bytes: UInt64, key: String, written: String) -> Result<Size, ConfigValueProblem> {
        guard bytes >= minimumMemory else {
            return .failure(ConfigValueProblem("\(key) \(written) is \(bytes) bytes, less than the minimum of 1M "
                                               + "(write \"\(bytes)M\" for megabytes)"))
        }
        return .success(.bytes(bytes))
    }

    /// `"50%"`, `"200%"`, `"12.5%"` (at most two decimals): CPU time per period in µs, of
    /// one CPU; at least 1%, at most `maximumCPUPercent`.
    public static func parseCPUMax(_ text: String) -> Result<USec, ConfigValueProblem> {
        let wrong = ConfigValueProblem("cpu-max must be a percentage of one CPU like \"50%\" or \"200%\", not \"\(EnvFile.bounded(text))\"")
        guard text.hasSuffix("%") else { return .failure(wrong) }
        let number = text.dropLast().split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let isDigits = { (s: Substring) in !s.isEmpty && s.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        guard let whole = number.first, isDigits(whole), number.count == 1 || (isDigits(number[1]) && number[1].count <= 2),
              whole.count <= 7, let percent = UInt64(whole) else {
            return .failure(wrong)
        }
        let fraction = number.count == 2 ? UInt64(number[1].padding(toLength: 2)) ?? 0 : 0
        let hundredths = percent * 100 + fraction
        guard hundredths >= 100, hundredths <= UInt64(maximumCPUPercent) * 100 else {
            return .failure(ConfigValueProblem("cpu-max must be between 1% and \(maximumCPUPercent)% of one CPU, not \(EnvFile.bounded(text))"))
        }
        return .success(hundredths * cpuPeriod / 10_000)
    }

    /// 1024 → "1K", 1536 → "1536", 64 << 20 → "64M".
    static func sizeText(_ n: UInt64) -> String {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where n >= 1 << shift && n % (1 << shift) == 0 {
            return "\(n >> shift)\(unit)"
        }
        return String(n)
    }
}

private extension Substring {
    /// Right-padded with "0" to `length` characters.
    func padding(toLength length: Int) -> String { String(self) + String(repeating: "0", count: Swift.max(0, length - count)) }
}
