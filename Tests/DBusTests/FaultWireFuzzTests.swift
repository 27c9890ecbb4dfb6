import Foundation
import Glibc
import XCTest
@testable import DBus

/// ringctl's decoder against hostile input (issue 13, item 7; docs/reliability.md): a reply
/// that would inflate memory, an authentication line without end, and a seeded generator of
/// malformed messages — RINGMASTER_FUZZ_INPUTS of them (20,000 by default, 1,000,000 in
/// `make faults`): no crash, every one decoded or refused, memory bounded. The regression
/// corpus below keeps every input that once misbehaved.
final class FaultWireFuzzTests: XCTestCase {
    /// Peak RSS of this process so far, KiB.
    private func peakKiB() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss
    }

    private func seconds(_ body: () -> Void) -> Double {
        var a = timespec(), b = timespec()
        clock_gettime(CLOCK_MONOTONIC, &a)
        body()
        clock_gettime(CLOCK_MONOTONIC, &b)
        return Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9
    }

    /// A method return whose body (signature `signature`) is `body`, as the bus would pass it.
    static func reply(signature: String, body: [UInt8]) throws -> [UInt8] {
        var header = WireEncoder(base: 0)
        header.integer(UInt8(ascii: "l"))
        header.integer(UInt8(2)) // METHOD_RETURN
        header.integer(UInt8(0))
        header.integer(UInt8(1))
        header.integer(UInt32(body.count))
        header.integer(UInt32(7))
        try header.value(.array(element: "(yv)", [
            .structure([.byte(5), .variant(.uint32(1))]), // reply serial
            .structure([.byte(8), .variant(.signature(signature))]),
        ]))
        header.align(8)
        return header.bytes + body
    }

    // MARK: inflation

    /// 64 MiB of `ay`: refused (more values than one message may hold) at once and without
    /// inflating (it took 2.7 GB and 7.6 s: one BusValue per byte).
    func testA64MiBByteArrayIsRefusedQuicklyWithoutInflating() throws {
        let n = 64 << 20
        var body = WireEncoder(base: 0)
        body.integer(UInt32(n))
        let message = try Self.reply(signature: "ay", body: body.bytes + [UInt8](repeating: 7, count: n))
        XCTAssertEqual(try WireMessage.length(ofMessageAt: message[...]), message.count)
        let before = peakKiB()
        var error: Error?
        let took = seconds {
            do { _ = try WireMessage(decoding: message) } catch let e { error = e }
        }
        XCTAssertNotNil(error, "a 64 MiB ay was decoded value by value")
        XCTAssertTrue("\(error.map { "\($0)" } ?? "")".contains("values"), "\(String(describing: error))")
        XCTAssertLessThan(took, 1, "took \(took) s")
        XCTAssertLessThan(peakKiB() - before, 128 << 10, "peak RSS grew by \(peakKiB() - before) KiB")
        print("FIGURE ringctl decoder: 64 MiB ay refused in \(String(format: "%.0f", took * 1000)) ms, peak RSS +\((peakKiB() - before) >> 10) MiB")
    }

    /// The largest legitimate replies still decode: 100,000 strings in an `as`.
    func testALargeLegitimateReplyStillDecodes() throws {
        var body = WireEncoder(base: 0)
        try body.value(.array(element: "s", (0..<100_000).map { .string("svc-\($0)") }))
        let message = try Self.reply(signature: "as", body: body.bytes)
        let decoded = try WireMessage(decoding: message)
        XCTAssertEqual(decoded.body.first?.elements?.count, 100_000)
    }

    // MARK: the authentication line

    /// A "bus" that answers AUTH with 8 MiB and no CRLF: the client gives up at once, saying
    /// why (it scanned the whole inbox again on every read: quadratic, and unbounded).
    func testAnEndlessAuthenticationLineIsRefusedAtOnce() throws {
        var template = Array("/tmp/ringmaster-auth-XXXXXX".utf8CString)
        let dir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        defer { unlink(dir + "/bus"); rmdir(dir) }
        let path = dir + "/bus"
        let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(server, 0)
        defer { close(server) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(server, 1), 0)
        let flood = Thread {
            let c = accept(server, nil, nil)
            guard c >= 0 else { return }
            let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 65_536)
            for _ in 0..<128 where chunk.withUnsafeBytes({ send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) > 0 {}
            // hold the connection until the client hangs up
            var b = [UInt8](repeating: 0, count: 4096)
            while recv(c, &b, b.count, 0) > 0 {}
            close(c)
        }
        flood.start()
        var failure = ""
        let took = seconds {
            do {
                let connection = try BusConnection(address: "unix:path=" + path)
                _ = try connection.hasOwner("x")
                failure = "no error"
            } catch {
                failure = "\(error)"
            }
        }
        XCTAssertTrue(failure.contains("authentication"), failure)
        XCTAssertLessThan(took, 3, "took \(took) s: \(failure)")
        print("FIGURE ringctl decoder: 8 MiB authentication line without CRLF refused in \(String(format: "%.0f", took * 1000)) ms")
    }

    // MARK: the fuzzer

    /// SplitMix64: a seed gives the same inputs on every machine.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    static let signatures = ["", "s", "u", "as", "a{sv}", "(ssuuo)", "a(ssuuo)", "v", "ay", "a{oa{sa{sv}}}", "at",
                             "(yv)", "aay", "g", "b", "x", "d", "a{sas}", "vv", "aav"]

    /// A random value of the complete type `sig` (small).
    static func value(_ sig: [UInt8], _ g: inout Generator, depth: Int = 0) -> BusValue {
        switch sig[0] {
        case UInt8(ascii: "y"): return .byte(UInt8(truncatingIfNeeded: g.next()))
        case UInt8(ascii: "b"): return .bool(g.next() & 1 == 1)
        case UInt8(ascii: "u"): return .uint32(UInt32(truncatingIfNeeded: g.next()))
        case UInt8(ascii: "t"): return .uint64(g.next())
        case UInt8(ascii: "x"): return .int64(Int64(bitPattern: g.next()))
        case UInt8(ascii: "d"): return .double(Double(g.below(1000)) / 7)
        case UInt8(ascii: "s"): return .string(String(repeating: "s", count: g.below(12)))
        case UInt8(ascii: "o"): return .objectPath("/o/\(g.below(100))")
        case UInt8(ascii: "g"): return .signature(signatures[g.below(signatures.count)])
        case UInt8(ascii: "v"):
            let inner = depth > 3 ? "u" : ["u", "s", "as", "v", "(yv)"][g.below(5)]
            return .variant(value(Array(inner.utf8), &g, depth: depth + 1))
        case UInt8(ascii: "a"):
            let element = Array(sig.dropFirst())
            let end = (try? Signature.completeTypeEnd(element, from: 0)) ?? element.count
            let e = Array(element[..<end])
            let count = depth > 3 ? 0 : g.below(4)
            if e.first == UInt8(ascii: "{") {
                let k = Array(e[1..<2]), vs = Array(e[2..<e.count - 1])
                return .array(element: String(decoding: e, as: UTF8.self),
                              (0..<count).map { _ in .dictEntry(value(k, &g, depth: depth + 1), value(vs, &g, depth: depth + 1)) })
            }
            return .array(element: String(decoding: e, as: UTF8.self), (0..<count).map { _ in value(e, &g, depth: depth + 1) })
        case UInt8(ascii: "("):
            var fields: [BusValue] = []
            var i = 1
            while i < sig.count - 1, sig[i] != UInt8(ascii: ")") {
                let end = (try? Signature.completeTypeEnd(sig, from: i)) ?? sig.count - 1
                fields.append(value(Array(sig[i..<end]), &g, depth: depth + 1))
                i = end
            }
            return .structure(fields)
        default: return .uint32(0)
        }
    }

    /// A valid reply of a random signature, then 0-8 mutations: flipped bytes, a length field
    /// set huge, truncated, extended with junk, a header field replaced.
    static func input(_ g: inout Generator) -> [UInt8] {
        let sig = signatures[g.below(signatures.count)]
        var body = WireEncoder(base: 0)
        if let types = try? Signature.split(sig) {
            for t in types { try? body.value(value(t, &g)) }
        }
        guard var bytes = try? reply(signature: sig, body: body.bytes) else { return [] }
        for _ in 0..<g.below(9) {
            guard !bytes.isEmpty else { break }
            switch g.below(6) {
            case 0: bytes[g.below(bytes.count)] = UInt8(truncatingIfNeeded: g.next())
            case 1: // a 32-bit length somewhere set to something large
                let at = g.below(bytes.count) & ~3
                let v = [UInt32(0xFFFF_FFFF), 0x7FFF_FFFF, 1 << 26, 1 << 24, UInt32(bytes.count)][g.below(5)]
                for k in 0..<4 where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
            case 2: bytes.removeLast(g.below(bytes.count))
            case 3: bytes += (0..<g.below(64)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            case 4: bytes[g.below(min(bytes.count, 16))] = [0, 1, 2, 3, 4, 0x6c, 0x42, 0xff][g.below(8)]
            default: // the signature byte-for-byte another one
                if let s = bytes.firstIndex(of: 8), s + 4 < bytes.count {
                    let other = Array(signatures[g.below(signatures.count)].utf8)
                    for (k, b) in other.enumerated() where s + 4 + k < bytes.count { bytes[s + 4 + k] = b }
                }
            }
        }
        return bytes
    }

    /// Decodes as BusConnection does: the length from the fixed header, then the message.
    static func decode(_ bytes: [UInt8]) -> Bool {
        guard let length = try? WireMessage.length(ofMessageAt: bytes[...]), length <= bytes.count else { return false }
        return (try? WireMessage(decoding: bytes[..<length])) != nil
    }

    func testSeededMalformedMessagesNeverCrashTheDecoderAndMemoryStaysBounded() {
        let count = ProcessInfo.processInfo.environment["RINGMASTER_FUZZ_INPUTS"].flatMap(Int.init) ?? 20_000
        var g = Generator(state: 0x5EED_1313)
        var decoded = 0
        // Warm up the allocator, then measure.
        for _ in 0..<1000 { _ = Self.decode(Self.input(&g)) }
        let before = peakKiB()
        let took = seconds {
            for _ in 0..<count where Self.decode(Self.input(&g)) { decoded += 1 }
        }
        let grew = peakKiB() - before
        XCTAssertLessThan(grew, 64 << 10, "peak RSS grew by \(grew) KiB over \(count) inputs")
        XCTAssertGreaterThan(decoded, 0, "no input was valid: the generator tests nothing but the header")
        XCTAssertLessThan(decoded, count, "no input was refused: the mutations do nothing")
        print("FIGURE ringctl decoder fuzz: \(count) seeded inputs, \(decoded) decoded, \(count - decoded) refused, 0 crashes, "
              + String(format: "%.1f s, ", took) + "peak RSS +\(grew) KiB")
    }

    // MARK: regression corpus

    /// Inputs that once crashed, hung or inflated a decoder, hex: each must be decoded or
    /// refused, quickly.
    static let corpus: [String] = [
        // an array length of 0xffffffff
        "6c02000108000000070000000f00000005017500010000000801670002617300000000ffffffff",
        // a variant whose signature is not one complete type
        "6c0200010800000007000000150000000501750001000000080167000176000000000000000000000261750000",
        // header fields array longer than the message
        "6c0200010000000007000000ffffff7f",
        // body length past the end
        "6c020001ffffff0f070000000f0000000501750001000000080167000173000000",
        // nested variants to the depth limit and beyond
        "6c02000140000000070000000f00000005017500010000000801670001760000000000" + String(repeating: "017600", count: 30),
        // a dict entry outside an array in the signature
        "6c0200010800000007000000120000000501750001000000080167000473757d7b000000",
        // a boolean of 2
        "6c0200010400000007000000100000000501750001000000080167000162000000000000" + "02000000",
        // big endian with a little-endian length
        "4202000100000008000000070000000f",
    ]

    func testRegressionCorpusIsDecodedOrRefused() throws {
        for (i, hex) in Self.corpus.enumerated() {
            var bytes: [UInt8] = []
            var it = hex.utf8.makeIterator()
            while let hi = it.next(), let lo = it.next() {
                bytes.append(UInt8(String(decoding: [hi, lo], as: UTF8.self), radix: 16) ?? 0)
            }
            let took = seconds { _ = Self.decode(bytes) }
            XCTAssertLessThan(took, 0.5, "corpus entry \(i)")
        }
        // And the 64 MiB `ay` header alone (the body never came): refused, no allocation.
        var body = WireEncoder(base: 0)
        body.integer(UInt32(64 << 20))
        let header = try Self.reply(signature: "ay", body: body.bytes)
        XCTAssertFalse(Self.decode(header))
    }
}
