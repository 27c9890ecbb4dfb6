// Who may speak for an instance on its notify socket (READY=1, STATUS=, WATCHDOG=1): a
// process of that instance, as systemd's NotifyAccess=all does for a unit. Pure: the runtime
// reads the facts (the sender's pid and uid from SCM_CREDENTIALS, its cgroup, process group and
// ancestors from /proc) and this decides.

public enum NotifyAccess {
    /// What the daemon knows of the instance a notify socket belongs to.
    public struct Instance: Equatable, Sendable {
        /// its main process, while it runs
        public var mainPID: Int32?
        /// the process group the daemon made for it (setsid in the child)
        public var processGroup: Int32?
        /// its cgroup directory when the daemon has a delegated cgroup tree, else nil
        public var cgroup: String?

        public init(mainPID: Int32?, processGroup: Int32?, cgroup: String?) {
            self.mainPID = mainPID
            self.processGroup = processGroup
            self.cgroup = cgroup
        }
    }

    /// What the kernel and /proc say of a message's sender (nil or empty: could not be read,
    /// e.g. the sender is already gone).
    public struct Sender: Equatable, Sendable {
        public var pid: Int32
        public var uid: UInt32
        /// its cgroup directory (same form as `Instance.cgroup`)
        public var cgroup: String?
        public var processGroup: Int32?
        /// its parent, grandparent, … (bounded)
        public var ancestors: [Int32]

        public init(pid: Int32, uid: UInt32, cgroup: String? = nil, processGroup: Int32? = nil, ancestors: [Int32] = []) {
            self.pid = pid
            self.uid = uid
            self.cgroup = cgroup
            self.processGroup = processGroup
            self.ancestors = ancestors
        }
    }

    /// True when `sender` is a process of `instance`: its main process; else, with a cgroup,
    /// a process in that cgroup or below (setsid'd grandchildren included); without one, a
    /// process in its process group or a descendant of its main process. Only our own uid
    /// (or root) at all; a sender without a pid (another pid namespace) never.
    public static func accepts(_ sender: Sender, for instance: Instance, daemonUID: UInt32) -> Bool {
        guard sender.uid == daemonUID || sender.uid == 0, sender.pid > 0 else { return false }
        if let main = instance.mainPID, sender.pid == main { return true }
        if let own = instance.cgroup {
            guard let theirs = sender.cgroup else { return false }
            return theirs == own || theirs.hasPrefix(own.hasSuffix("/") ? own : own + "/")
        }
        if let group = instance.processGroup, sender.processGroup == group { return true }
        if let main = instance.mainPID, sender.ancestors.contains(main) { return true }
        return false
    }

    /// Whether the facts about the sender are needed at all (the main process needs none).
    public static func needsFacts(senderPID: Int32, for instance: Instance) -> Bool {
        senderPID > 0 && senderPID != instance.mainPID
    }
}
