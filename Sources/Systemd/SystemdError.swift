import Glibc

/// A failed libsystemd (or plain libc) call: the operation and its errno,
/// printed as "sd_event_add_io: Bad file descriptor".
public struct SystemdError: Error, Equatable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno)))"
    }
}

/// libsystemd returns a negative errno on failure: turn that into a thrown error.
@discardableResult
func check(_ result: Int32, _ operation: @autoclosure () -> String) throws -> Int32 {
    if result < 0 { throw SystemdError(operation(), errno: -result) }
    return result
}
