import RingmasterCore
import XCTest

/// Who speaks for an instance on its notify socket, as a table.
final class NotifyAccessTests: XCTestCase {
    typealias S = NotifyAccess.Sender

    func testTable() {
        let me: UInt32 = 1000
        let byGroup = NotifyAccess.Instance(mainPID: 100, processGroup: 100, cgroup: nil)
        let byCgroup = NotifyAccess.Instance(mainPID: 100, processGroup: 100, cgroup: "/sys/fs/cgroup/u/services/web/0")
        let rows: [(String, S, NotifyAccess.Instance, Bool)] = [
            ("the main process", S(pid: 100, uid: me), byGroup, true),
            ("the main process, as root", S(pid: 100, uid: 0), byGroup, true),
            ("the main process pid but another uid", S(pid: 100, uid: 65534), byGroup, false),
            ("no pid (another pid namespace)", S(pid: 0, uid: me), byGroup, false),
            ("in its process group", S(pid: 101, uid: me, processGroup: 100), byGroup, true),
            ("a descendant that left the group (setsid)", S(pid: 102, uid: me, processGroup: 102, ancestors: [101, 100, 1]), byGroup, true),
            ("another service's process", S(pid: 200, uid: me, processGroup: 200, ancestors: [50]), byGroup, false),
            ("a process gone before it was looked at", S(pid: 300, uid: me), byGroup, false),
            ("in its cgroup", S(pid: 103, uid: me, cgroup: "/sys/fs/cgroup/u/services/web/0"), byCgroup, true),
            ("below its cgroup", S(pid: 104, uid: me, cgroup: "/sys/fs/cgroup/u/services/web/0/sub"), byCgroup, true),
            ("a sibling cgroup with a common prefix", S(pid: 105, uid: me, cgroup: "/sys/fs/cgroup/u/services/web/01"), byCgroup, false),
            ("another instance's cgroup, same process group number", S(pid: 106, uid: me, cgroup: "/sys/fs/cgroup/u/services/web/1", processGroup: 100), byCgroup, false),
            ("with a cgroup, none known for the sender", S(pid: 107, uid: me, processGroup: 100), byCgroup, false),
            ("an instance not running: its old group only", S(pid: 108, uid: me, processGroup: 100), NotifyAccess.Instance(mainPID: nil, processGroup: 100, cgroup: nil), true),
        ]
        for (what, sender, instance, expected) in rows {
            XCTAssertEqual(NotifyAccess.accepts(sender, for: instance, daemonUID: me), expected, what)
        }
        XCTAssertFalse(NotifyAccess.needsFacts(senderPID: 100, for: byGroup))
        XCTAssertTrue(NotifyAccess.needsFacts(senderPID: 101, for: byGroup))
    }
}
