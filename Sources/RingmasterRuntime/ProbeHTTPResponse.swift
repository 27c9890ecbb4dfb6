/// Reads one HTTP/1.x response to a probe's `GET`, fed as it arrives: the verdict (2xx/3xx
/// passes) from the status line, and just enough of the framing to know where the response
/// ends, so the connection can carry the next probe (HTTP/1.1 keep-alive). Bounded: a status
/// line within `maximumStatusLine` bytes, a head within `maximumHead`, a body of at most
/// `maximumBody` bytes discarded. Anything it cannot frame within those bounds — HTTP/1.0,
/// `Connection: close`, a body until EOF, a transfer coding other than `chunked`, conflicting
/// lengths, a larger body, bytes after the end — still gets its verdict, but is not
/// `reusable`: the connection is closed and the next probe connects afresh.
struct HTTPResponseReader {
    /// The bytes of the status line looked at, at most.
    static let maximumStatusLine = 1024
    /// The status line and headers, at most.
    static let maximumHead = 8192
    /// The body discarded to keep the connection, at most (its chunk framing included).
    static let maximumBody = 65536

    enum Outcome: Equatable {
        case needMore
        case done(passed: Bool, detail: String, reusable: Bool)
    }

    private enum Phase: Equatable {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailer
        case complete
    }

    private var phase = Phase.head
    /// the head so far (phase `head`), or the current chunk-size / trailer line
    private var pending: [UInt8] = []
    private var verdict: (passed: Bool, detail: String)?
    private var bodyBytes = 0
    private(set) var received = 0

    /// Bytes that arrived. `.done` once the response is over (or can be judged and will not be
    /// read further); the reader is not fed after that.
    mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>) -> Outcome {
        received += bytes.count
        var i = 0
        while i < bytes.count {
            switch phase {
            case .head:
                let start = pending.count
                pending.append(contentsOf: bytes[i...])
                i = bytes.count
                if verdict == nil {
                    guard let nl = pending.firstIndex(of: UInt8(ascii: "\n")) else {
                        if pending.count >= Self.maximumStatusLine { return finalVerdict(ended: true) }
                        return .needMore
                    }
                    let v = SocketProbe.statusVerdict(Array(pending[...nl]), ended: false)!
                    // A failure (or not HTTP/1.1) needs nothing more: the connection is closed.
                    guard v.passed, pending.starts(with: "HTTP/1.1 ".utf8) else {
                        return .done(passed: v.passed, detail: v.detail, reusable: false)
                    }
                    verdict = v
                }
                guard let end = Self.headEnd(pending, from: max(0, start - 3)) else {
                    if pending.count >= Self.maximumHead { return notReusable() }
                    return .needMore
                }
                guard end <= Self.maximumHead else { return notReusable() }
                let rest = Array(pending[end...])
                guard let framing = Self.framing(pending[..<end]) else { return notReusable() }
                pending = []
                phase = framing
                if phase == .complete { return rest.isEmpty ? reused() : notReusable() }
                if rest.isEmpty { return .needMore }
                return rest.withUnsafeBufferPointer { feed(body: $0) }
            default:
                return feed(body: UnsafeBufferPointer(rebasing: bytes[i...]))
            }
        }
        return .needMore
    }

    /// The connection ended (EOF or an error) before the reader was done.
    mutating func ended() -> Outcome { finalVerdict(ended: true) }

    private mutating func feed(body bytes: UnsafeBufferPointer<UInt8>) -> Outcome {
        var i = 0
        while i < bytes.count {
            switch phase {
            case .head, .complete:
                return notReusable() // (not reached: bytes after the end)
            case let .body(remaining):
                let n = min(remaining, bytes.count - i)
                i += n
                phase = remaining == n ? .complete : .body(remaining: remaining - n)
            case let .chunkData(remaining):
                let n = min(remaining, bytes.count - i)
                i += n
                bodyBytes += n
                phase = remaining == n ? .chunkEnd : .chunkData(remaining: remaining - n)
            case .chunkSize, .chunkEnd, .trailer:
                let b = bytes[i]
                i += 1
                bodyBytes += 1
                guard bodyBytes <= Self.maximumBody, pending.count < 1024 else { return notReusable() }
                guard b == UInt8(ascii: "\n") else { pending.append(b); continue }
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                let line = pending
                pending = []
                switch phase {
                case .chunkEnd:
                    guard line.isEmpty else { return notReusable() }
                    phase = .chunkSize
                case .trailer:
                    if line.isEmpty { phase = .complete }
                default:
                    guard let size = Self.chunkSize(line), size <= Self.maximumBody - bodyBytes else { return notReusable() }
                    phase = size == 0 ? .trailer : .chunkData(remaining: size)
                }
            }
            if phase == .complete { return i == bytes.count ? reused() : notReusable() }
        }
        return .needMore
    }

    private func finalVerdict(ended: Bool) -> Outcome {
        if let verdict { return .done(passed: verdict.passed, detail: verdict.detail, reusable: false) }
        let v = SocketProbe.statusVerdict(pending.count > Self.maximumStatusLine ? Array(pending.prefix(Self.maximumStatusLine)) : pending,
                                          ended: ended)!
        return .done(passed: v.passed, detail: v.detail, reusable: false)
    }

    private mutating func notReusable() -> Outcome {
        phase = .complete
        return finalVerdict(ended: true)
    }

    private mutating func reused() -> Outcome {
        let v = verdict!
        return .done(passed: v.passed, detail: v.detail, reusable: true)
    }

    /// The index just past the blank line ending the head ("\r\n\r\n" or "\n\n"), if it came.
    private static func headEnd(_ b: [UInt8], from: Int) -> Int? {
        var i = from
        while i < b.count {
            if b[i] == UInt8(ascii: "\n") {
                if i + 1 < b.count, b[i + 1] == UInt8(ascii: "\n") { return i + 2 }
                if i + 2 < b.count, b[i + 1] == UInt8(ascii: "\r"), b[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// What follows a passing HTTP/1.1 head: nil when the connection cannot be kept.
    private static func framing(_ head: ArraySlice<UInt8>) -> Phase? {
        var lines = head.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).map { line in
            line.last == UInt8(ascii: "\r") ? line.dropLast() : line
        }
        let status = lines.removeFirst()
        let code = status.dropFirst(9).prefix(3).reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        var length: Int?
        var chunked = false
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            let name = line[..<colon]
            let value = trimmed(line[line.index(after: colon)...])
            if equalsIgnoringCase(name, "content-length") {
                guard !value.isEmpty, value.count <= 10, value.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
                let n = value.reduce(0) { $0 * 10 + Int($1 - 48) }
                if let length, length != n { return nil }
                length = n
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                // only `chunked` alone is framed here (gzip, chunked and the like: closed)
                guard !chunked, equalsIgnoringCase(value, "chunked") else { return nil }
                chunked = true
            } else if equalsIgnoringCase(name, "connection") {
                for token in value.split(separator: UInt8(ascii: ",")) where equalsIgnoringCase(trimmed(token), "close") {
                    return nil
                }
            }
        }
        if code == 204 || code == 304 { return .complete } // no body, whatever the headers say
        if chunked { return length == nil ? .chunkSize : nil }
        guard let length else { return nil } // a body until EOF
        guard length <= maximumBody else { return nil }
        return length == 0 ? .complete : .body(remaining: length)
    }

    /// A chunk-size line: hex digits, then optional `;extensions`.
    private static func chunkSize(_ line: [UInt8]) -> Int? {
        let digits = trimmed(line.prefix { $0 != UInt8(ascii: ";") })
        guard !digits.isEmpty, digits.count <= 8 else { return nil }
        var n = 0
        for d in digits {
            switch d {
            case 48...57: n = n * 16 + Int(d - 48)
            case 65...70: n = n * 16 + Int(d - 55)
            case 97...102: n = n * 16 + Int(d - 87)
            default: return nil
            }
        }
        return n
    }

    private static func trimmed<C: BidirectionalCollection>(_ s: C) -> C.SubSequence where C.Element == UInt8 {
        let isSpace: (UInt8) -> Bool = { $0 == 32 || $0 == 9 }
        guard let first = s.firstIndex(where: { !isSpace($0) }), let last = s.lastIndex(where: { !isSpace($0) }) else {
            return s[s.endIndex...]
        }
        return s[first...last]
    }

    private static func equalsIgnoringCase<C: Collection>(_ a: C, _ b: StaticString) -> Bool where C.Element == UInt8 {
        guard a.count == b.utf8CodeUnitCount else { return false }
        return b.withUTF8Buffer { expected in
            zip(a, expected).allSatisfy { x, y in (x >= 65 && x <= 90 ? x + 32 : x) == y }
        }
    }
}
