import Foundation
import Glibc
import RingmasterCore
@testable import RingmasterRuntime
import Systemd
import XCTest

/// Cgroup parsing as tables; then real cgroups: a test cgroup ringmaster-unit-PID made under
/// the cgroup2 mount (as root), instances spawned into it, killed with cgroup.kill, removed.
final class CgroupTests: XCTestCase {
    // MARK: parsing

    func testOwnCgroupIsTheV2Line() {
        let hybrid = "9:name=systemd:/user.slice/x.service\n4:memory:/user.slice\n0::/user.slice/x.service\n"
        XCTAssertEqual(ownCgroup2Path(procSelfCgroup: hybrid), "/user.slice/x.service")
        XCTAssertEqual(ownCgroup2Path(procSelfCgroup: "0::/\n"), "/")
        XCTAssertNil(ownCgroup2Path(procSelfCgroup: "1:name=systemd:/a\n"), "v1 only")
    }

    func testCgroup2MountFromMountinfo() {
        let hybrid = """
            31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,name=systemd
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
            """
        let m = cgroup2Mount(mountinfo: hybrid)
        XCTAssertEqual(m?.point, "/sys/fs/cgroup/unified")
        XCTAssertEqual(m?.root, "/")
        let escaped = "50 1 0:40 /a\\040b /mnt/cg\\040two rw - cgroup2 none rw\n"
        XCTAssertEqual(cgroup2Mount(mountinfo: escaped)?.point, "/mnt/cg two")
        XCTAssertEqual(cgroup2Mount(mountinfo: escaped)?.root, "/a b")
        XCTAssertNil(cgroup2Mount(mountinfo: "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"))
    }

    func testCgroupDirectoryJoinsMountAndPath() {
        XCTAssertEqual(cgroupDirectory(mount: ("/sys/fs/cgroup", "/"), own: "/a/b.service"), "/sys/fs/cgroup/a/b.service")
        XCTAssertEqual(cgroupDirectory(mount: ("/sys/fs/cgroup/unified", "/"), own: "/"), "/sys/fs/cgroup/unified")
        XCTAssertEqual(cgroupDirectory(mount: ("/mnt", "/a"), own: "/a/b"), "/mnt/b")
        XCTAssertNil(cgroupDirectory(mount: ("/mnt", "/a"), own: "/c"))
    }

    func testServiceNamesThatCouldClashWithInterfaceFilesAreEscaped() {
        let table: [(String, String)] = [
            ("web", "web"), ("my.app", "my.app"), ("web-2", "web-2"),
            ("cgroup.procs", "_cgroup.procs"), ("memory.max", "_memory.max"), ("cpu.x", "_cpu.x"),
            ("_hidden", "__hidden"), ("tasks", "_tasks"), ("memory", "memory"),
        ]
        for (name, expected) in table { XCTAssertEqual(cgroupName(service: name), expected, name) }
    }

    func testEventsAndCPUStatParsing() {
        XCTAssertEqual(parsePopulated("populated 1\nfrozen 0\n"), true)
        XCTAssertEqual(parsePopulated("populated 0\nfrozen 0\n"), false)
        XCTAssertNil(parsePopulated(""))
        XCTAssertEqual(parseCPUUsage("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n"), 1_234_000)
        XCTAssertNil(parseCPUUsage("nr_periods 0\n"))
    }

    // MARK: real cgroups

    private var testCgroup = ""

    struct SetupError: Error, CustomStringConvertible { var description: String }

    /// A fresh cgroup for the test under the cgroup2 mount. Needs root and cgroup2, as
    /// `make check` has them (these tests run in the private session, as root): a run that
    /// cannot test this fails, saying why, rather than skipping.
    private func makeTestCgroup() throws -> String {
        guard let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
              let mount = cgroup2Mount(mountinfo: mountinfo), mount.root == "/" else {
            throw SetupError(description: "no cgroup2 mount in /proc/self/mountinfo")
        }
        let dir = mount.point + "/ringmaster-unit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(dir, 0o755) == 0 else {
            throw SetupError(description: "mkdir \(dir): \(String(cString: strerror(errno))) (run as root: `make check`)")
        }
        testCgroup = dir
        return dir
    }

    override func tearDown() {
        if !testCgroup.isEmpty { removeTree(testCgroup) }
        testCgroup = ""
        super.tearDown()
    }

    /// Kills whatever is left and removes `dir` depth first.
    private func removeTree(_ dir: String) {
        let kill = dir + "/cgroup.kill"
        if FileManager.default.fileExists(atPath: kill) { try? "1".write(toFile: kill, atomically: false, encoding: .utf8) }
        for _ in 0..<200 {
            let subs = (try? FileManager.default.subpathsOfDirectory(atPath: dir)) ?? []
            for sub in subs.sorted(by: { $0.count > $1.count }) { rmdir(dir + "/" + sub) }
            if rmdir(dir) == 0 || errno == ENOENT { return }
            usleep(10_000)
        }
        XCTFail("could not remove \(dir)")
    }

    /// The cgroup v2 path of `pid` as /proc/PID/cgroup says it.
    private func cgroupOf(_ pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)).flatMap { ownCgroup2Path(procSelfCgroup: $0) }
    }

    private func mountRelative(_ dir: String) -> String {
        let mount = cgroup2Mount(mountinfo: (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")!
        return String(dir.dropFirst(mount.point.count))
    }

    private func reap(_ process: SpawnedProcess) {
        var status: Int32 = 0
        while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
        close(process.pidfd)
    }

    private func spawnSleeper(into cgroup: InstanceCgroup, script: String = "exec sleep 1000") throws -> SpawnedProcess {
        var request = sh(script)
        request.cgroupFD = cgroup.fd
        return try PosixSpawner().spawn(request)
    }

    func testSpawnedChildStartsInItsCgroup() throws {
        let root = try makeTestCgroup()
        let tree = CgroupTree(path: root)
        let mine = cgroupOf(getpid())
        let cgroup = try tree.instance(service: "web", index: 2)
        XCTAssertEqual(cgroup.path, root + "/services/web/2")
        let child = try spawnSleeper(into: cgroup)
        defer { kill(child.pid, SIGKILL); reap(child) }
        XCTAssertEqual(cgroupOf(child.pid), mountRelative(root) + "/services/web/2")
        XCTAssertEqual(cgroup.pids, [child.pid])
        XCTAssertTrue(cgroup.isPopulated)
        XCTAssertNotNil(cgroup.cpuUsageNSec)
        XCTAssertEqual(cgroupOf(getpid()), mine, "the test process itself stays where it was")
    }

    /// The fallbacks too: the copy-on-write clone3 is born there (CLONE_INTO_CGROUP), the fork
    /// fallback's child joins it before anything else.
    func testEveryFallbackPathStartsTheChildInItsCgroup() throws {
        let root = try makeTestCgroup()
        let tree = CgroupTree(path: root)
        for (index, path) in [SpawnPath.clone3, .fork].enumerated() {
            let cgroup = try tree.instance(service: "web", index: index)
            let child = try path.run { try spawnSleeper(into: cgroup) }
            defer { kill(child.pid, SIGKILL); reap(child) }
            XCTAssertEqual(cgroupOf(child.pid), mountRelative(root) + "/services/web/\(index)", "\(path)")
        }
    }

    func testAMissingCgroupIsASpawnError() throws {
        let root = try makeTestCgroup()
        let cgroup = try CgroupTree(path: root).instance(service: "web", index: 0)
        XCTAssertEqual(rmdir(cgroup.path), 0)
        // clone3 reports the dead cgroup itself; the fork fallback's child cannot join it.
        XCTAssertThrowsError(try spawnSleeper(into: cgroup)) { error in
            XCTAssertEqual((error as? SpawnError)?.stage, "clone", "\(error)")
        }
        XCTAssertThrowsError(try SpawnPath.fork.run { try spawnSleeper(into: cgroup) }) { error in
            XCTAssertEqual((error as? SpawnError)?.stage, "cgroup", "\(error)")
        }
    }

    func testKillTakesTheSetsidGrandchildToo() throws {
        let root = try makeTestCgroup()
        let cgroup = try CgroupTree(path: root).instance(service: "web", index: 0)
        // The grandchild leaves the child's session and process group: kill(-pgid) misses it.
        let child = try spawnSleeper(into: cgroup, script: "setsid sleep 1000 & exec sleep 1000")
        defer { kill(child.pid, SIGKILL); reap(child) } // (reap alone would wait forever if the kill failed)
        let both = waitUntil { cgroup.pids.count == 2 }
        XCTAssertTrue(both, "child and grandchild in the cgroup: \(cgroup.pids)")
        let grandchild = cgroup.pids.first { $0 != child.pid }
        XCTAssertTrue(cgroup.kill())
        XCTAssertTrue(waitUntil { !cgroup.isPopulated }, "still there: \(cgroup.pids)")
        if let grandchild {
            // Dead: gone, or a zombie waiting for whoever inherited it.
            let stat = (try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8)) ?? ""
            let state = stat.lastIndex(of: ")").map { stat[stat.index($0, offsetBy: 2)] }
            XCTAssertTrue(state == nil || state == "Z", "grandchild \(grandchild): \(stat)")
        }
    }

    /// The kill-pid-by-pid fallback (kernels before 5.14, no cgroup.kill) signals what a
    /// snapshot of cgroup.procs listed; by then a listed pid may have died and been reused by
    /// a process elsewhere. Given such a stale list (an unrelated process's pid in it), only
    /// the cgroup's own process dies: each pid is pinned with a pidfd, checked, then signalled.
    func testPidByPidKillSparesAProcessThatTookAListedPid() throws {
        let root = try makeTestCgroup()
        let cgroup = try CgroupTree(path: root).instance(service: "web", index: 0)
        let member = try spawnSleeper(into: cgroup)
        defer { kill(member.pid, SIGKILL); reap(member) }
        let outsider = try PosixSpawner().spawn(sh("exec sleep 1000"))
        defer { kill(outsider.pid, SIGKILL); reap(outsider) }
        XCTAssertEqual(cgroup.pids, [member.pid])
        XCTAssertTrue(cgroup.killMembers([outsider.pid, member.pid]))
        XCTAssertTrue(waitUntil { !cgroup.isPopulated }, "the member survived: \(cgroup.pids)")
        var status: Int32 = 0
        XCTAssertEqual(waitpid(outsider.pid, &status, WNOHANG), 0, "the process outside the cgroup was signalled")
        XCTAssertEqual(kill(outsider.pid, 0), 0)
    }

    func testRemoveWhenEmptyWaitsForTheLastProcess() throws {
        let root = try makeTestCgroup()
        let tree = CgroupTree(path: root)
        let cgroup = try tree.instance(service: "web", index: 0)
        let loop = try EventLoop()
        let child = try spawnSleeper(into: cgroup, script: "exec sleep 1000")
        var reaped = false
        defer { if !reaped { kill(child.pid, SIGKILL); reap(child) } }
        tree.removeWhenEmpty(cgroup, loop: loop)
        XCTAssertEqual(tree.pendingRemovalPaths, [cgroup.path], "populated: not removed yet")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cgroup.path))
        kill(child.pid, SIGKILL)
        reap(child)
        reaped = true
        let gone = waitUntil {
            _ = try? loop.runOnce(timeout: 50_000)
            return !FileManager.default.fileExists(atPath: cgroup.path)
        }
        XCTAssertTrue(gone, "removed once empty")
        XCTAssertEqual(tree.pendingRemovalPaths, [])

        // An empty one goes at once; a new instance() makes it again.
        let again = try tree.instance(service: "web", index: 0)
        tree.removeWhenEmpty(again, loop: loop)
        XCTAssertFalse(FileManager.default.fileExists(atPath: again.path))
        XCTAssertTrue(tree.removeService("web"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/services/web"))
    }

    func testInstanceCancelsAPendingRemoval() throws {
        let root = try makeTestCgroup()
        let tree = CgroupTree(path: root)
        let cgroup = try tree.instance(service: "web", index: 0)
        let child = try spawnSleeper(into: cgroup)
        defer { kill(child.pid, SIGKILL); reap(child) }
        let loop = try EventLoop()
        tree.removeWhenEmpty(cgroup, loop: loop)
        _ = try tree.instance(service: "web", index: 0)
        XCTAssertEqual(tree.pendingRemovalPaths, [])
    }

    /// Limits go into the instance's cgroup before anything runs there, or — without the
    /// controller (these machines' hybrid v2 hierarchy has none) — the instance cgroup is not
    /// made at all and the error names the key and the controller.
    func testLimitsAreWrittenOrRefusedWithTheReason() throws {
        let root = try makeTestCgroup()
        let tree = CgroupTree(path: root)
        var limits = ResourceLimits()
        limits.memoryMax = .bytes(64 << 20)
        limits.pidsMax = 64
        if CgroupTree.controllers(of: root).isSuperset(of: ["memory", "pids"]) {
            let cgroup = try tree.instance(service: "web", index: 0, limits: limits)
            XCTAssertEqual(readSmallFile(cgroup.path + "/memory.max").map(CgroupFS.trimmed), "67108864")
            XCTAssertEqual(readSmallFile(cgroup.path + "/memory.oom.group").map(CgroupFS.trimmed), "1")
            XCTAssertEqual(readSmallFile(cgroup.path + "/pids.max").map(CgroupFS.trimmed), "64")
            XCTAssertEqual(cgroup.oomKills, 0)
            // Reused without limits (a reload removed them): back to the defaults.
            let again = try tree.instance(service: "web", index: 0)
            XCTAssertEqual(readSmallFile(again.path + "/memory.max").map(CgroupFS.trimmed), "max")
            XCTAssertEqual(readSmallFile(again.path + "/pids.max").map(CgroupFS.trimmed), "max")
        } else {
            XCTAssertThrowsError(try tree.instance(service: "web", index: 0, limits: limits)) { error in
                XCTAssertTrue("\(error)".hasPrefix("memory-max needs the memory controller, which this cgroup does not have (controllers here: "),
                              "\(error)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/services/web/0"), "made but not usable")
        }
        XCTAssertNoThrow(try tree.instance(service: "web", index: 1), "no limits: always")
        XCTAssertEqual(CgroupTree.limitsProblemWithoutCgroup(limits),
                       "memory-max needs the memory controller, which ringmasterd cannot use: it has no delegated cgroup (see its start-up log)")
        XCTAssertNil(CgroupTree.limitsProblemWithoutCgroup(ResourceLimits()))
    }

    func testOOMKillsFromMemoryEvents() {
        XCTAssertEqual(parseOOMKills("low 0\nhigh 3\nmax 7\noom 2\noom_kill 2\noom_group_kill 1\n"), 2)
        XCTAssertNil(parseOOMKills("low 0\n"))
    }

    func testDelegationRule() throws {
        let root = try makeTestCgroup()
        XCTAssertEqual(CgroupTree.delegationProblem(root, isRoot: true), "ringmasterd runs in the root cgroup")
        XCTAssertNil(CgroupTree.delegationProblem(root, isRoot: false), "empty, writable, domain: ours")
        let cgroup = try CgroupTree(path: root).instance(service: "x", index: 0)
        let child = try spawnSleeper(into: cgroup)
        defer { kill(child.pid, SIGKILL); reap(child) }
        let leaf = root + "/services/x/0"
        XCTAssertEqual(CgroupTree.delegationProblem(leaf, isRoot: false),
                       "1 other process shares it (no Delegate=yes?)")
    }
}

/// Polls `condition` for up to `timeout` seconds.
private func waitUntil(timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
