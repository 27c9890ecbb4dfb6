import XCTest
@testable import RingmasterCore

/// The limit keys: what each accepts, what it becomes in the cgroup, and each mistake at
/// its file:line:column.
final class ResourceLimitTests: XCTestCase {
    private func limits(_ keys: String, file: StaticString = #filePath, line: UInt = #line) -> ResourceLimits? {
        acceptedService(keys, file: file, line: line)?.limits
    }

    private func errors(_ keys: String) -> [String] { serviceErrors(keys) { "\($0.limits)" } }

    func testSizes() {
        let M: UInt64 = 1 << 20
        let table: [(String, ResourceLimits.Size)] = [
            ("\"512M\"", .bytes(512 * M)), ("\"512m\"", .bytes(512 * M)), ("\"2G\"", .bytes(2 << 30)),
            ("\"1024K\"", .bytes(M)), ("\"1T\"", .bytes(1 << 40)), ("\"1048576\"", .bytes(M)),
            ("67108864", .bytes(64 * M)), ("\"infinity\"", .infinity),
        ]
        for (written, expected) in table {
            XCTAssertEqual(limits("memory-max = \(written)")?.memoryMax, expected, written)
            XCTAssertEqual(limits("memory-high = \(written)")?.memoryHigh, expected, written)
        }
    }

    func testCPUAndPids() {
        let table: [(String, USec)] = [("\"50%\"", 50_000), ("\"200%\"", 200_000), ("\"1%\"", 1_000), ("\"12.5%\"", 12_500),
                                       ("\"1.05%\"", 1_050), ("\"100000%\"", 100_000_000)]
        for (written, quota) in table {
            XCTAssertEqual(limits("cpu-max = \(written)")?.cpuQuota, quota, written)
        }
        XCTAssertEqual(limits("cpu-weight = 1")?.cpuWeight, 1)
        XCTAssertEqual(limits("cpu-weight = 10000")?.cpuWeight, 10_000)
        XCTAssertEqual(limits("pids-max = 64")?.pidsMax, 64)
        XCTAssertEqual(limits("")?.isEmpty, true)
    }

    func testMistakes() {
        let sizeHelp = "must be a size like \"512M\", \"2G\", a number of bytes, or \"infinity\""
        let table: [(String, String)] = [
            ("memory-max = \"512MB\"", "c.toml:3:14: memory-max \(sizeHelp), not \"512MB\""),
            ("memory-max = \"1.5G\"", "c.toml:3:14: memory-max \(sizeHelp), not \"1.5G\""),
            ("memory-max = \"\"", "c.toml:3:14: memory-max \(sizeHelp), not \"\""),
            ("memory-max = \"-1M\"", "c.toml:3:14: memory-max \(sizeHelp), not \"-1M\""),
            ("memory-max = \"max\"", "c.toml:3:14: memory-max \(sizeHelp), not \"max\""),
            ("memory-high = 512", "c.toml:3:15: memory-high 512 is 512 bytes, less than the minimum of 1M (write \"512M\" for megabytes)"),
            ("memory-max = \"100K\"", "c.toml:3:14: memory-max \"100K\" is 102400 bytes, less than the minimum of 1M (write \"102400M\" for megabytes)"),
            ("memory-max = -5", "c.toml:3:14: memory-max must not be negative"),
            ("memory-max = \"99999999999T\"", "c.toml:3:14: memory-max \"99999999999T\" is too large (write \"infinity\" for no limit)"),
            ("memory-max = true", "c.toml:3:14: memory-max must be a size like \"512M\", not a boolean"),
            ("memory-max = \"1G\"\nmemory-high = \"2G\"", "c.toml:4:15: memory-high (2G) must not be more than memory-max (1G)"),
            ("cpu-max = \"50\"", "c.toml:3:11: cpu-max must be a percentage of one CPU like \"50%\" or \"200%\", not \"50\""),
            ("cpu-max = \"0.5%\"", "c.toml:3:11: cpu-max must be between 1% and 100000% of one CPU, not 0.5%"),
            ("cpu-max = \"0%\"", "c.toml:3:11: cpu-max must be between 1% and 100000% of one CPU, not 0%"),
            ("cpu-max = \"200000%\"", "c.toml:3:11: cpu-max must be between 1% and 100000% of one CPU, not 200000%"),
            ("cpu-max = \"1.234%\"", "c.toml:3:11: cpu-max must be a percentage of one CPU like \"50%\" or \"200%\", not \"1.234%\""),
            ("cpu-max = \"%\"", "c.toml:3:11: cpu-max must be a percentage of one CPU like \"50%\" or \"200%\", not \"%\""),
            ("cpu-max = 50", "c.toml:3:11: cpu-max must be a percentage like \"50%\", not an integer"),
            ("cpu-weight = 0", "c.toml:3:14: cpu-weight must be between 1 and 10000, not 0"),
            ("cpu-weight = 10001", "c.toml:3:14: cpu-weight must be between 1 and 10000, not 10001"),
            ("cpu-weight = \"100\"", "c.toml:3:14: cpu-weight must be an integer, not a string"),
            ("pids-max = 0", "c.toml:3:12: pids-max must be between 1 and 4194304, not 0"),
            ("pids-max = \"64\"", "c.toml:3:12: pids-max must be an integer, not a string"),
            ("memory-restart = \"1G\"", "c.toml:3:18: memory-restart needs memory-high at or below it (e.g. memory-high = \"1G\"): the kernel tells of an instance's memory only as it passes memory.high, and ringmasterd does not poll"),
            ("memory-high = \"2G\"\nmemory-restart = \"1G\"", "c.toml:4:18: memory-restart needs memory-high at or below it (e.g. memory-high = \"1G\"): the kernel tells of an instance's memory only as it passes memory.high, and ringmasterd does not poll"),
            ("memory-high = \"1G\"\nmemory-max = \"1G\"\nmemory-restart = \"1G\"", "c.toml:5:18: memory-restart (1G) must be below memory-max (1G): the instance would be OOM-killed first"),
            ("memory-high = \"1G\"\nmemory-restart = \"infinity\"", "c.toml:4:18: memory-restart must be a size, not \"infinity\" (leave the key out for none)"),
            ("memory-high = \"1G\"\nmemory-restart = \"1K\"", "c.toml:4:18: memory-restart \"1K\" is 1024 bytes, less than the minimum of 1M (write \"1024M\" for megabytes)"),
            ("memory-mx = \"1G\"", "c.toml:3:1: unknown key \"memory-mx\" in [services.w]; did you mean \"memory-max\"?"),
        ]
        for (keys, expected) in table {
            XCTAssertEqual(errors(keys), [expected], keys)
        }
    }

    func testCgroupSettings() throws {
        let all = try XCTUnwrap(limits("memory-max = \"64M\"\nmemory-high = \"48M\"\ncpu-weight = 50\ncpu-max = \"20%\"\npids-max = 64"))
        XCTAssertEqual(all.cgroupSettings.map { "\($0.controller) \($0.file)=\($0.value) (\($0.key))" }, [
            "memory memory.oom.group=1 (memory-max)",
            "memory memory.high=50331648 (memory-high)",
            "memory memory.max=67108864 (memory-max)",
            "cpu cpu.weight=50 (cpu-weight)",
            "cpu cpu.max=20000 100000 (cpu-max)",
            "pids pids.max=64 (pids-max)",
        ])
        let high = try XCTUnwrap(limits("memory-high = \"infinity\""))
        XCTAssertEqual(high.cgroupSettings.map { "\($0.file)=\($0.value) (\($0.key))" },
                       ["memory.oom.group=1 (memory-high)", "memory.high=max (memory-high)"])
        XCTAssertEqual(limits("")?.cgroupSettings, [])
        XCTAssertEqual(Set(ResourceLimits.cgroupDefaults.map(\.file)), Set(all.cgroupSettings.map(\.file)),
                       "every file a limit writes has a default to reset it to")
    }

    /// A changed limit is a changed service on reload.
    func testLimitsArePartOfTheServiceConfig() throws {
        let a = try ConfigLoader.parse(text: "[services.w]\ncommand = [\"x\"]\npids-max = 64", file: "c.toml").services[0]
        let b = try ConfigLoader.parse(text: "[services.w]\ncommand = [\"x\"]\npids-max = 65", file: "c.toml").services[0]
        XCTAssertNotEqual(a, b)
    }
}
