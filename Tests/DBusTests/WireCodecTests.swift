import XCTest
@testable import DBus

/// The wire format against the D-Bus specification's rules and known bytes; the client
/// against libsystemd and the real bus is tested in RingmasterRuntimeTests (BusWrapperTests)
/// and by every ringctl integration test.
final class WireCodecTests: XCTestCase {
    private func encode(_ values: [BusValue], base: Int = 0) throws -> [UInt8] {
        var e = WireEncoder(base: base)
        for v in values { try e.value(v) }
        return e.bytes
    }

    private func roundTrip(_ values: [BusValue], file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try encode(values)
        var d = WireDecoder(bytes)
        let back = try d.values(signature: values.map(\.signature).joined())
        XCTAssertEqual(back, values, file: file, line: line)
        XCTAssertEqual(d.position, bytes.count, file: file, line: line)
    }

    func testAlignmentAndLayoutFollowTheSpecification() throws {
        // y then u: 3 bytes of padding; then t: aligned to 8; s: length, bytes, NUL.
        XCTAssertEqual(try encode([.byte(7), .uint32(0x0102_0304), .uint64(1), .string("ab")]),
                       [7, 0, 0, 0, 4, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 97, 98, 0])
        // An empty array of structs still pads to the element's alignment, and the length
        // excludes that padding.
        XCTAssertEqual(try encode([.array(element: "(u)", [])]), [0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(try encode([.array(element: "t", [.uint64(5)])]), [8, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
        // A variant: its signature (g), then the value aligned in the message.
        XCTAssertEqual(try encode([.variant(.uint32(1))]), [1, 117, 0, 0, 1, 0, 0, 0])
        // Alignment counts from the start of the message, not of the buffer.
        XCTAssertEqual(try encode([.uint32(1)], base: 2), [0, 0, 1, 0, 0, 0])
    }

    func testEveryTypeRoundTrips() throws {
        try roundTrip([.byte(255), .bool(true), .bool(false), .int16(-2), .uint16(65535), .int32(Int32.min),
                       .uint32(UInt32.max), .int64(Int64.min), .uint64(UInt64.max), .double(-1.5),
                       .string("héllo ✓"), .objectPath("/io/ringmaster/Ringmaster1/service/web"), .signature("a{sv}")])
        try roundTrip([.array(element: "(ssuuo)", [
            .structure([.string("web"), .string("running"), .uint32(3), .uint32(3), .objectPath("/a/web")]),
            .structure([.string("db"), .string("failed"), .uint32(0), .uint32(1), .objectPath("/a/db")]),
        ])])
        try roundTrip([.dictionary("s", "v", [(.string("PIDs"), .variant(.array(element: "u", [.uint32(1), .uint32(2)]))),
                                              (.string("Name"), .variant(.string("web")))])])
        try roundTrip([.dictionary("o", "a{sa{sv}}", [(.objectPath("/x"), .dictionary("s", "a{sv}", [
            (.string("io.x"), .dictionary("s", "v", [(.string("T"), .variant(.uint64(9)))])),
        ]))])])
        try roundTrip([.variant(.variant(.structure([.byte(1), .double(2)]))), .array(element: "as", [.strings([]), .strings(["a"])])])
    }

    func testMessagesRoundTripAndMatchSdBusLayout() throws {
        var call = WireMessage.methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                          interface: "org.freedesktop.DBus", member: "Hello")
        let hello = try call.encoded(serial: 1)
        // Fixed header: 'l', METHOD_CALL, no flags, version 1, empty body, serial 1.
        XCTAssertEqual(Array(hello.prefix(12)), [108, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0])
        XCTAssertEqual(hello.count % 8, 0)
        XCTAssertEqual(try WireMessage.length(ofMessageAt: hello[...]), hello.count)
        call.serial = 1
        XCTAssertEqual(try WireMessage(decoding: hello), call)

        var reply = WireMessage(kind: .error)
        reply.errorName = "io.ringmaster.Ringmaster1.Error.NoSuchService"
        reply.replySerial = 7
        reply.sender = ":1.4"
        reply.destination = ":1.9"
        reply.body = [.string("no service named \"x\"")]
        reply.serial = 3
        let bytes = try reply.encoded(serial: 3)
        let back = try WireMessage(decoding: bytes)
        XCTAssertEqual(back, reply)
        XCTAssertEqual(back.busError, BusError("io.ringmaster.Ringmaster1.Error.NoSuchService", "no service named \"x\""))
        // Incomplete input: no length until the fixed header is there.
        XCTAssertNil(try WireMessage.length(ofMessageAt: bytes.prefix(15)))
    }

    func testBigEndianMessagesAreRead() throws {
        // A signal from a big-endian peer: 'B', SIGNAL, serial 2, PATH "/", MEMBER "M", body u 1.
        var m: [UInt8] = [66, 4, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2]
        var fields: [UInt8] = [1, 1, 111, 0, 0, 0, 0, 1, 47, 0, 0, 0, 0, 0, 0, 0,  // (PATH, o "/")
                               3, 1, 115, 0, 0, 0, 0, 1, 77, 0, 0, 0, 0, 0, 0, 0,  // (MEMBER, s "M")
                               8, 1, 103, 0, 1, 117, 0]                           // (SIGNATURE, g "u")
        m += [0, 0, 0, UInt8(fields.count)]
        m += fields
        fields = []
        while m.count % 8 != 0 { m.append(0) }
        m += [0, 0, 0, 1]
        let message = try WireMessage(decoding: m)
        XCTAssertEqual(message.kind, .signal)
        XCTAssertEqual(message.serial, 2)
        XCTAssertEqual(message.path, "/")
        XCTAssertEqual(message.member, "M")
        XCTAssertEqual(message.body, [.uint32(1)])
    }

    func testMalformedInputIsRejectedNotTrusted() throws {
        func rejects(_ bytes: [UInt8], _ signature: String, file: StaticString = #filePath, line: UInt = #line) {
            var d = WireDecoder(bytes)
            XCTAssertThrowsError(try d.values(signature: signature), file: file, line: line)
        }
        rejects([5, 0, 0, 0, 97, 98], "s")                 // string past the end
        rejects([1, 0, 0, 0, 97, 98], "s")                 // no NUL where the length says
        rejects([2, 0, 0, 0], "b")                         // a boolean is 0 or 1
        rejects([255, 255, 255, 255], "au")                // array past the end
        rejects([4, 0, 0, 0, 1, 0], "au")                  // truncated element
        rejects([1, 122, 0], "v")                          // unknown type in a variant
        rejects([2, 117, 117, 0], "v")                     // variant of two types
        rejects([0, 0, 0, 0], "a")                         // incomplete signature
        rejects([0, 0, 0, 0], "a{uuu}")                    // dict entry of three
        rejects([], String(repeating: "a", count: 80) + "u") // nested too deeply
        // Variants nested past the limit are refused, not recursed into.
        var deep: [UInt8] = []
        for _ in 0..<100 { deep += [1, 118, 0] }
        rejects(deep, "v")
        XCTAssertThrowsError(try WireMessage(decoding: [108, 9, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertThrowsError(try WireMessage.length(ofMessageAt: [120, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0][...]))
        // A body length that disagrees with the message.
        var ok = try WireMessage.methodCall(destination: nil, path: "/", interface: nil, member: "M", [.uint32(1)]).encoded(serial: 1)
        ok.append(0)
        XCTAssertThrowsError(try WireMessage(decoding: ok))
    }

    func testEncoderRefusesWhatTheBusWouldDisconnectFor() {
        XCTAssertThrowsError(try encode([.string("a\u{0}b")]))
        XCTAssertThrowsError(try encode([.array(element: "u", [.string("x")])]))
        XCTAssertThrowsError(try encode([.signature(String(repeating: "u", count: 256))]))
    }

    func testAddresses() {
        XCTAssertEqual(BusAddress.unixSockets("unix:path=/run/user/1000/bus"), [.path("/run/user/1000/bus")])
        XCTAssertEqual(BusAddress.unixSockets("tcp:host=x,port=1;unix:abstract=/tmp/dbus-Q,guid=0f;unix:path=/a%20b"),
                       [.abstract("/tmp/dbus-Q"), .path("/a b")])
        XCTAssertEqual(BusAddress.unixSockets("unix:path=/bad%zz;unix:runtime=yes"), [])
        XCTAssertEqual(BusAddress.escape("/run/user/0/bus"), "/run/user/0/bus")
        XCTAssertEqual(BusAddress.escape("/a b;c"), "/a%20b%3bc")
        XCTAssertEqual(BusAddress.unixSockets("unix:path=" + BusAddress.escape("/a b;c,d=e")), [.path("/a b;c,d=e")])
    }
}
