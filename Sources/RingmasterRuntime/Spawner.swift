import CRingShims
import Glibc

/// Everything needed to start one process. The environment is complete and explicit:
/// nothing of the daemon's own environment is inherited.
public struct SpawnRequest: Equatable, Sendable {
    /// argv[0] is the program: a path, or a name looked up in the PATH of `environment`
    /// (default "/usr/local/bin:/usr/bin:/bin").
    public var argv: [String]
    /// "NAME=value" entries.
    public var environment: [String]
    /// Set LISTEN_PID to the child's own pid (replacing any LISTEN_PID in `environment`).
    public var listenPID: Bool
    /// Set WATCHDOG_PID to the child's own pid (replacing any WATCHDOG_PID in `environment`),
    /// as systemd does for a service with a watchdog.
    public var watchdogPID = false
    /// chdir target; nil keeps the daemon's working directory.
    public var workingDirectory: String?
    /// Become the child's 0, 1, 2; -1 means /dev/null. The fds stay the caller's.
    public var stdin: Int32
    public var stdout: Int32
    public var stderr: Int32
    /// Become the child's 3, 4, … in order (the LISTEN_FDS sockets).
    public var extraFDs: [Int32]
    /// If set, the child connects its stdout (priority info) and stderr (priority err) to
    /// journald under this identifier, and gets JOURNAL_STREAM; if journald cannot be
    /// reached, `stdout`/`stderr` are used instead and JOURNAL_STREAM is left out.
    public var journalIdentifier: String?
    /// journald's stream socket; nil means /run/systemd/journal/stdout (tests change it).
    public var journalSocketPath: String?
    /// Retries (20 ms apart) of a journal connect that finds journald's backlog full. 0: the
    /// daemon waits for the child before exec, so a stuck journald must cost nothing (tests
    /// use retries to hold a child before exec).
    public var journalConnectRetries: Int32 = 0
    /// A cgroup v2 directory fd (`InstanceCgroup.fd`) the child is started in, so that it and
    /// everything it forks can be killed as one (`cgroup.kill`); nil keeps the daemon's cgroup.
    /// The fd stays the caller's.
    public var cgroupFD: Int32?
    /// the child's soft RLIMIT_NOFILE, when the daemon raised its own (nil: inherit)
    public var nofileSoftLimit: UInt64? = nil

    public init(argv: [String], environment: [String] = [], listenPID: Bool = false,
                workingDirectory: String? = nil, stdin: Int32 = -1, stdout: Int32 = -1,
                stderr: Int32 = -1, extraFDs: [Int32] = [], journalIdentifier: String? = nil,
                journalSocketPath: String? = nil, cgroupFD: Int32? = nil) {
        self.argv = argv
        self.environment = environment
        self.listenPID = listenPID
        self.workingDirectory = workingDirectory
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.extraFDs = extraFDs
        self.journalIdentifier = journalIdentifier
        self.journalSocketPath = journalSocketPath
        self.cgroupFD = cgroupFD
    }
}

/// A started process. The caller owns `pidfd` (hand it to `EventLoop.watchChild`).
public struct SpawnedProcess: Equatable, Sendable {
    public var pid: Int32
    public var pidfd: Int32

    public init(pid: Int32, pidfd: Int32) {
        self.pid = pid
        self.pidfd = pidfd
    }
}

/// Why a process could not be started: the stage that failed in the child (or in the
/// parent: "clone", "pipe", "pidfd_open"), its errno, and the file it was about.
public struct SpawnError: Error, Equatable, Sendable, CustomStringConvertible {
    /// "exec", "chdir", "setsid", "dup2", "listen_pid", "watchdog_pid", "cgroup" (child); "clone", "pipe", "pidfd_open" (parent)
    public var stage: String
    public var errno: Int32
    /// The program for "exec", the directory for "chdir", else empty.
    public var file: String

    public init(stage: String, errno: Int32, file: String = "") {
        self.stage = stage
        self.errno = errno
        self.file = file
    }

    /// "exec python4: No such file or directory", "chdir /nope: …", "dup2: Bad file descriptor".
    public var description: String {
        let reason = errnoString(errno)
        return file.isEmpty ? "\(stage): \(reason)" : "\(stage) \(file): \(reason)"
    }
}

/// Starts processes. The supervisor talks to this protocol so that its tests can use a
/// fake that records requests instead of forking.
public protocol Spawner {
    func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess
}

/// The real spawner: clone3 → exec in the CRingShims C shim (see spawn.c and spawn_child.c).
public struct PosixSpawner: Spawner {
    public init() {}

    public func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        guard let program = request.argv.first, !program.isEmpty else {
            throw SpawnError(stage: "exec", errno: ENOENT, file: "")
        }

        // Every C string lives until ring_spawn returns; the child only reads them (it
        // fills in LISTEN_PID and JOURNAL_STREAM in its own copy of the environment).
        var allocations: [UnsafeMutablePointer<CChar>] = []
        defer { allocations.forEach { free($0) } }
        func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
            let p = strdup(s)!
            allocations.append(p)
            return p
        }

        var argv: [UnsafeMutablePointer<CChar>?] = request.argv.map { cString($0) }
        argv.append(nil)

        var envp: [UnsafeMutablePointer<CChar>?] = []
        var searchPath: UnsafeMutablePointer<CChar>? = nil
        for entry in request.environment {
            if request.listenPID && entry.hasPrefix("LISTEN_PID=") { continue }
            if request.watchdogPID && entry.hasPrefix("WATCHDOG_PID=") { continue }
            if request.journalIdentifier != nil && entry.hasPrefix("JOURNAL_STREAM=") { continue }
            let p = cString(entry)
            if entry.hasPrefix("PATH=") { searchPath = p + 5 }
            envp.append(p)
        }
        var listenPIDIndex: Int32 = -1
        if request.listenPID {
            listenPIDIndex = Int32(envp.count)
            envp.append(cString("LISTEN_PID="))
        }
        var watchdogPIDIndex: Int32 = -1
        if request.watchdogPID {
            watchdogPIDIndex = Int32(envp.count)
            envp.append(cString("WATCHDOG_PID="))
        }
        var journalStreamIndex: Int32 = -1
        if request.journalIdentifier != nil {
            journalStreamIndex = Int32(envp.count)
            envp.append(cString("JOURNAL_STREAM="))
        }
        envp.append(nil)

        var pid: pid_t = 0
        var pidfd: Int32 = -1
        var errorNumber: Int32 = 0
        var stage: UnsafePointer<CChar>? = nil
        let extraFDs = request.extraFDs
        let result = argv.withUnsafeBufferPointer { argvBuffer in
            envp.withUnsafeBufferPointer { envpBuffer in
                extraFDs.withUnsafeBufferPointer { fdBuffer in
                    var c = ring_spawn_request()
                    c.file = UnsafePointer(argvBuffer[0])
                    c.argv = argvBuffer.baseAddress
                    c.envp = envpBuffer.baseAddress
                    c.listen_pid_index = listenPIDIndex
                    c.journal_stream_index = journalStreamIndex
                    c.watchdog_pid_index = watchdogPIDIndex
                    c.search_path = UnsafePointer(searchPath)
                    c.cwd = request.workingDirectory.map { UnsafePointer(cString($0)) }
                    c.stdin_fd = request.stdin
                    c.stdout_fd = request.stdout
                    c.stderr_fd = request.stderr
                    c.extra_fds = fdBuffer.baseAddress
                    c.n_extra_fds = Int32(fdBuffer.count)
                    c.journal_identifier = request.journalIdentifier.map { UnsafePointer(cString($0)) }
                    c.journal_socket = request.journalSocketPath.map { UnsafePointer(cString($0)) }
                    c.journal_connect_retries = request.journalConnectRetries
                    c.cgroup_fd = request.cgroupFD ?? -1
                    c.nofile_soft = UInt(request.nofileSoftLimit ?? 0)
                    return ring_spawn(&c, &pid, &pidfd, &errorNumber, &stage)
                }
            }
        }
        guard result == 0 else {
            let stageName = stage.map { String(cString: $0) } ?? "exec"
            let file: String
            switch stageName {
            case "exec": file = program
            case "chdir": file = request.workingDirectory ?? ""
            default: file = ""
            }
            throw SpawnError(stage: stageName, errno: errorNumber, file: file)
        }
        return SpawnedProcess(pid: pid, pidfd: pidfd)
    }
}
