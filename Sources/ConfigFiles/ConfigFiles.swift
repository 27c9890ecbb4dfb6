// The configuration's file I/O, for both executables: finding the default path (environment,
// password database), listing conf.d, reading each file safely. The parsing is the pure core's
// (`ConfigLoader.parse(read:problems:)`).
import Glibc
import RingmasterCore

extension ConfigLoader {
    /// The main file plus `conf.d/*.toml` beside it, merged, validated. A file that cannot
    /// be read is a diagnostic at `file:1:1` saying why; a missing conf.d is fine.
    public static func load(mainFile: String) throws(ConfigErrors) -> Config {
        var files = [mainFile]
        var problems: [ConfigDiagnostic] = []
        switch ConfigFiles.listTOMLFiles(in: confDirectory(forMainFile: mainFile)) {
        case let .success(names): files += names
        case let .failure(problem): problems.append(problem)
        }
        let home = getenv("HOME").map { String(cString: $0) }
        return try parse(read: files.map { ($0, ConfigFiles.read($0)) }, problems: problems,
                         externalFiles: ExternalFiles(home: home, read: ConfigFiles.readEnvFile))
    }

    /// `defaultConfigPath(environment:)` from this process's environment (HOME from the
    /// password database if unset).
    public static func defaultConfigPath() -> String {
        var environment: [String: String] = [:]
        if let x = getenv("XDG_CONFIG_HOME") { environment["XDG_CONFIG_HOME"] = String(cString: x) }
        if let h = getenv("HOME"), h.pointee != 0 {
            environment["HOME"] = String(cString: h)
        } else if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir {
            environment["HOME"] = String(cString: dir)
        }
        return defaultConfigPath(environment: environment)
    }
}

public enum ConfigFiles {
    /// No configuration file is larger (a 5,000-service file is ~0.5 MiB).
    public static let maxFileSize = 16 << 20

    /// The bytes of the regular file at `path`, or a diagnostic at `path:1:1`. Opened
    /// non-blocking (a FIFO does not wait for a writer), checked with fstat to be a regular
    /// file (not a FIFO, device, directory or socket: `/dev/zero` would never end), and read
    /// up to `maxFileSize`.
    public static func read(_ path: String) -> Result<[UInt8], ConfigDiagnostic> {
        let at = SourceLocation(file: path, line: 1, column: 1)
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return .failure(ConfigDiagnostic(at, "cannot open the file: \(errnoText())")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(ConfigDiagnostic(at, "cannot stat the file: \(errnoText())")) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            return .failure(ConfigDiagnostic(at, "not a regular file (\(kind(st.st_mode)))"))
        }
        let tooBig = ConfigDiagnostic(at, "larger than 16 MiB: not a configuration file")
        guard st.st_size <= maxFileSize else { return .failure(tooBig) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(st.st_size))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ConfigDiagnostic(at, "cannot read the file: \(errnoText())"))
            }
            if n == 0 { return .success(bytes) }
            bytes.append(contentsOf: buffer[0..<n])
            if bytes.count > maxFileSize { return .failure(tooBig) }  // it grew while read
        }
    }

    /// An env file's bytes: a regular file (opened without blocking, so a FIFO cannot hang
    /// the load) of at most EnvFile.maximumSize bytes; `missing` tells an optional file (`-`)
    /// that it may be skipped.
    @Sendable public static func readEnvFile(_ path: String) -> Result<[UInt8], FileReadFailure> {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return .failure(FileReadFailure(missing: errno == ENOENT || errno == ENOTDIR,
                                                                    message: "cannot open the file: \(errnoText())")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(FileReadFailure(missing: false, message: "cannot read the file: \(errnoText())")) }
        guard st.st_mode & S_IFMT == S_IFREG else { return .failure(FileReadFailure(missing: false, message: "not a regular file (\(kind(st.st_mode)))")) }
        let tooLarge = FileReadFailure(missing: false, message: "larger than \(EnvFile.maximumSize >> 20) MiB")
        guard st.st_size <= EnvFile.maximumSize else { return .failure(tooLarge) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= EnvFile.maximumSize {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(FileReadFailure(missing: false, message: "cannot read the file: \(errnoText())")) }
            if n == 0 { return .success(bytes) }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return .failure(tooLarge)
    }

    /// `*.toml` in `directory` (not dot files), sorted by name in byte order; a missing
    /// directory is empty.
    public static func listTOMLFiles(in directory: String) -> Result<[String], ConfigDiagnostic> {
        guard let dir = opendir(directory) else {
            if errno == ENOENT { return .success([]) }
            return .failure(ConfigDiagnostic(SourceLocation(file: directory, line: 1, column: 1),
                                             "cannot read the directory: \(errnoText())"))
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name.first == UInt8(ascii: ".") || !name.reversed().starts(with: Array(".toml".utf8).reversed()) {
                continue
            }
            names.append(name)
        }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return .success(names.map { directory + "/" + String(decoding: $0, as: UTF8.self) })
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        case S_IFSOCK: return "a socket"
        default: return "not a file"
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
