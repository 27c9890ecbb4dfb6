// The last entries of the journal that match some fields, read through journalctl (ringctl
// links no libsystemd, so that it stays one static executable): `-o export` is binary-safe and
// carries each entry's priority and time. Bounded: at most `count` entries, each message cut.
import Glibc

struct JournalEntry: Equatable {
    /// __REALTIME_TIMESTAMP: µs since the epoch
    var realtime: UInt64
    /// PRIORITY (syslog level): 3 for a service's stderr, 6 for its stdout
    var priority: Int
    var message: String
}

enum JournalQuery {
    /// The most bytes of journalctl output read (then it is stopped).
    static let maximumOutput = 4 << 20
    /// A message longer than this is cut, with "…".
    static let maximumMessage = 512

    /// The last `count` entries matching every one of `matches` ("FIELD=value"; the same field
    /// twice matches either), oldest first, or why they could not be read.
    static func last(_ count: Int, matching matches: [String]) -> Result<[JournalEntry], Failure> {
        let argv = ["journalctl", "--no-pager", "--quiet", "--output=export",
                    "--output-fields=MESSAGE,PRIORITY", "--lines=\(count)"] + matches
        switch run(argv) {
        case let .failure(f): return .failure(f)
        case let .success((bytes, status)):
            if status != 0 && bytes.isEmpty {
                return .failure(Failure("journalctl exited with status \(status)"))
            }
            return .success(parseExport(bytes).suffix(count).map { $0 })
        }
    }

    /// `journalctl -o export` entries (systemd's "Journal Export Format"): fields as
    /// `NAME=value\n`, or `NAME\n` + 64-bit little-endian length + bytes + `\n` for a value
    /// that is not plain text; a blank line ends an entry.
    static func parseExport(_ bytes: [UInt8]) -> [JournalEntry] {
        var entries: [JournalEntry] = []
        var fields: [String: [UInt8]] = [:]
        func finish() {
            if let message = fields["MESSAGE"] {
                let realtime = fields["__REALTIME_TIMESTAMP"].flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0
                let priority = fields["PRIORITY"].flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 6
                entries.append(JournalEntry(realtime: realtime, priority: priority, message: shown(message)))
            }
            fields.removeAll()
        }
        var i = 0
        let n = bytes.count
        while i < n {
            if bytes[i] == 10 { finish(); i += 1; continue }
            let start = i
            while i < n, bytes[i] != UInt8(ascii: "="), bytes[i] != 10 { i += 1 }
            guard i < n else { break }
            let name = String(decoding: bytes[start..<i], as: UTF8.self)
            if bytes[i] == UInt8(ascii: "=") {
                i += 1
                let valueStart = i
                while i < n, bytes[i] != 10 { i += 1 }
                fields[name] = Array(bytes[valueStart..<i])
                i += 1
            } else {
                i += 1
                guard i + 8 <= n else { break }
                var length: UInt64 = 0
                for k in 0..<8 { length |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
                i += 8
                guard length <= UInt64(n - i) else { break }
                fields[name] = Array(bytes[i..<i + Int(length)])
                i += Int(length) + 1
            }
        }
        finish()
        return entries
    }

    /// A message as one line of a terminal: control characters as spaces, cut after
    /// `maximumMessage` bytes.
    static func shown(_ bytes: [UInt8]) -> String {
        var cut = bytes.prefix(maximumMessage).map { $0 < 32 || $0 == 127 ? UInt8(ascii: " ") : $0 }
        while let last = cut.last, last == UInt8(ascii: " ") { cut.removeLast() }
        var text = String(decoding: cut, as: UTF8.self)
        if bytes.count > maximumMessage { text += "…" }
        return text
    }

    /// Runs `argv` (found on $PATH) with stdout into a pipe; its bytes (at most
    /// `maximumOutput`) and its exit status.
    private static func run(_ argv: [String]) -> Result<([UInt8], Int32), Failure> {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return .failure(Failure("pipe: \(String(cString: strerror(errno)))")) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } // the child's stdout is a dup2, without it
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var cArgs = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            return .failure(Failure("cannot run journalctl: \(String(cString: strerror(spawned)))"))
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < maximumOutput {
            let r = read(fds[0], &buffer, buffer.count)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            bytes += buffer[0..<r]
        }
        close(fds[0])
        if bytes.count >= maximumOutput { kill(pid, SIGTERM) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return .success((bytes, exited))
    }
}
