import ConfigFiles
import Glibc
import RingmasterCore

/// Where the runtime changes of `ringctl scale|start|stop` are kept across a restart of
/// ringmasterd (the core decides what they are and what is restored: RuntimeChanges.swift):
/// `$XDG_RUNTIME_DIR/ringmaster/changes.<digest of the config path>`, in the daemon's private
/// 0700 directory (NotifyDirectory), on the tmpfs systemd removes when the user's last
/// session ends — never in the config files, never past a reboot. Written atomically (a
/// temporary file renamed over it) when the changes differ from what the file holds; removed
/// when there are none. Small, on tmpfs: the write does not block the loop.
struct RuntimeChangesUnavailable: Error, CustomStringConvertible {
    var description: String { "no usable $XDG_RUNTIME_DIR (its directory is a temporary one)" }
}

final class RuntimeChangesStore {
    let path: String
    /// what the file holds (nil: not known yet, write at the next chance)
    private var saved: [String: RuntimeChange]?

    init(path: String) { self.path = path }

    /// The store for the daemon of `configPath`: each config its own file, so that several
    /// daemons of one user (tests, a second stack) never share one.
    static func forConfig(_ configPath: String) throws -> RuntimeChangesStore {
        let dir = try NotifyDirectory.shared()
        // A temporary directory goes with this daemon (and must stay removable at exit).
        guard !NotifyDirectory.isTemporary else { throw RuntimeChangesUnavailable() }
        var resolved = configPath
        if let p = realpath(configPath, nil) {
            resolved = String(cString: p)
            free(p)
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in resolved.utf8 { hash ^= UInt64(byte); hash = hash &* 0x0000_0100_0000_01b3 }
        return RuntimeChangesStore(path: dir + "/changes." + String(hash, radix: 16))
    }

    /// What the file says (none when it is missing or unreadable), and a problem to log.
    func load() -> (changes: [RuntimeChange], problem: String?) {
        guard access(path, F_OK) == 0 else { return ([], nil) }
        switch ConfigFiles.read(path) {
        case let .success(bytes):
            let (changes, skipped) = RuntimeChangesFile.parse(String(decoding: bytes, as: UTF8.self))
            return (changes, skipped > 0 ? "\(path): \(skipped) line\(skipped == 1 ? "" : "s") not understood, skipped" : nil)
        case let .failure(diagnostic):
            return ([], diagnostic.description)
        }
    }

    /// Writes the stack's runtime changes if they differ from what the file holds; a problem
    /// to log, or nil.
    func save(_ stack: Stack) -> String? {
        guard let summary = stack.runtimeChangeSummary(), summary != saved else { return nil }
        let changes = stack.runtimeChanges()
        if changes.isEmpty {
            if unlink(path) != 0 && errno != ENOENT { return "cannot remove \(path): \(String(cString: strerror(errno)))" }
            saved = summary
            return nil
        }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return "cannot write \(temporary): \(String(cString: strerror(errno)))" }
        let text = Array(RuntimeChangesFile.format(changes).utf8)
        var written = 0
        while written < text.count {
            let n = text[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let e = errno
                close(fd)
                unlink(temporary)
                return "cannot write \(temporary): \(String(cString: strerror(e)))"
            }
            written += n
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            return "cannot rename \(temporary) to \(path): \(String(cString: strerror(e)))"
        }
        saved = summary
        return nil
    }
}
