import Foundation
import Glibc
import Systemd
import XCTest

/// A value of every type the daemon's interfaces use, nested.
private let everyType: [BusValue] = [
    .dictionary("s", "v", [(.string("n"), .variant(.int32(-7))), (.string("list"), .variant(.strings(["a", "b"])))]),
    .structure([.string("s"), .int64(-1), .uint64(UInt64.max), .byte(3)]),
    .array(element: "y", [.byte(0), .byte(255)]),
    .bool(true), .bool(false), .int16(-2), .uint16(2), .int32(Int32.min), .uint32(UInt32.max), .double(-1.5),
    .objectPath("/a/b"), .signature("a{sv}"), .string("héllo ✓"),
    .array(element: "(su)", []), .array(element: "a{sa{sv}}", [.dictionary("s", "a{sv}", [])]),
    .variant(.variant(.uint64(9))),
]

/// The sd-bus wrappers (Bus, BusMessage, vtables) against the session's real user bus: a
/// server on its own thread and sd-event loop, a client on the test's thread.
final class BusWrapperTests: XCTestCase {
    func testSignatures() {
        XCTAssertEqual(BusValue.array(element: "(ssuuo)", []).signature, "a(ssuuo)")
        XCTAssertEqual(BusValue.structure([.string("a"), .uint32(1), .objectPath("/x")]).signature, "(suo)")
        XCTAssertEqual(BusValue.dictionary("s", "v", [(.string("k"), .variant(.int32(1)))]).signature, "a{sv}")
        XCTAssertEqual(BusValue.strings(["a"]).signature, "as")
    }

    func testPathEncoding() {
        let prefix = "/io/ringmaster/Ringmaster1/service"
        XCTAssertEqual(Bus.encodePath(prefix: prefix, "web"), prefix + "/web")
        XCTAssertEqual(Bus.encodePath(prefix: prefix, "web-1.api_x"), prefix + "/web_2d1_2eapi_5fx")
        for name in ["web", "web-1.api_x", "9lives", "a__b", "x"] {
            XCTAssertEqual(Bus.decodePath(prefix: prefix, Bus.encodePath(prefix: prefix, name)), name)
        }
        XCTAssertNil(Bus.decodePath(prefix: prefix, "/elsewhere/web"))
    }

    func testObjectsMethodsPropertiesSignalsAndErrors() throws {
        let name = "io.ringmaster.Test.P\(getpid())"
        let server = try TestServer.start(name: name)
        defer { server.stop() }
        let client = try Bus.user()

        // Every type, nested, through the generic reader and writer, both ways.
        let values = everyType
        let reply = try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                    member: "Echo", [.array(element: "v", values.map { .variant($0) })])
        XCTAssertEqual(try reply.readAll(), [.array(element: "v", values.map { .variant($0) })])

        // An error reply keeps its name and message.
        XCTAssertThrowsError(try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                             member: "Fail", [.string("io.ringmaster.Test.Error.Nope")])) { error in
            XCTAssertEqual(error as? BusError, BusError("io.ringmaster.Test.Error.Nope", "failed on purpose"))
        }
        // sd-bus checks the signature before the handler runs.
        XCTAssertThrowsError(try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                             member: "Fail", [.uint32(1)])) { error in
            XCTAssertEqual((error as? BusError)?.name, BusError.invalidArgs)
        }

        // Properties, on the plain object and on the fallback's objects.
        XCTAssertEqual(try client.getProperty(destination: name, path: "/test", interface: "io.ringmaster.Test", name: "Const"),
                       .string("constant"))
        let items = "/test/items"
        let all = try client.getAllProperties(destination: name, path: Bus.encodePath(prefix: items, "a-b"),
                                              interface: "io.ringmaster.Test.Item")
        XCTAssertEqual(all["Name"], .string("a-b"))
        XCTAssertThrowsError(try client.getAllProperties(destination: name, path: Bus.encodePath(prefix: items, "zz"),
                                                         interface: "io.ringmaster.Test.Item")) { error in
            XCTAssertEqual((error as? BusError)?.name, BusError.unknownObject)
        }
        // The node enumerator lists them for introspection (busctl tree).
        let xml = try client.call(destination: name, path: items, interface: "org.freedesktop.DBus.Introspectable",
                                  member: "Introspect").readString()
        XCTAssertTrue(xml.contains("<node name=\"a_2db\"/>") && xml.contains("<node name=\"c\"/>"), xml)
        // Argument names reach the introspection.
        let testXML = try client.call(destination: name, path: "/test", interface: "org.freedesktop.DBus.Introspectable",
                                      member: "Introspect").readString()
        XCTAssertTrue(testXML.contains("<arg type=\"av\" name=\"values\" direction=\"in\"/>"), testXML)
        XCTAssertTrue(testXML.contains("<arg type=\"s\" name=\"text\"/>"), testXML)

        // A signal and PropertiesChanged, both received through matches.
        var pings: [String] = []
        var changed: [String: BusValue] = [:]
        let pingMatch = try client.matchSignal(sender: name, path: "/test", interface: "io.ringmaster.Test", member: "Ping") {
            if let text = try? $0.readString() { pings.append(text) }
        }
        let changeMatch = try client.matchSignal(sender: name, path: "/test", interface: "org.freedesktop.DBus.Properties",
                                                 member: "PropertiesChanged") { message in
            _ = try? message.readString()
            if let dict = (try? message.readValue())?.stringKeyedDictionary { changed.merge(dict) { $1 } }
        }
        try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test", member: "Emit")
        try client.process { pings == ["hello"] && changed["Counter"] == .uint32(1) }
        withExtendedLifetime((pingMatch, changeMatch)) {}
    }
}

extension BusWrapperTests {
    /// DBus.BusConnection (ringctl's client: the wire protocol in Swift) against sd-bus and
    /// the real bus: both marshallers must agree on every type, both ways.
    func testWireClientAgainstSdBus() throws {
        let name = "io.ringmaster.Test.W\(getpid())"
        let server = try TestServer.start(name: name)
        defer { server.stop() }
        let client = try BusConnection.user()
        let values = everyType
        let echo = WireMessage.methodCall(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                          member: "Echo", [.array(element: "v", values.map { .variant($0) })])
        let fail = WireMessage.methodCall(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                          member: "Fail", [.string("io.ringmaster.Test.Error.Nope")])
        let badSignature = WireMessage.methodCall(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                                  member: "Fail", [.uint32(1)])
        // Pipelined: four calls in one write, the replies matched to their calls.
        let replies = try client.callAll([echo, fail, badSignature, echo])
        XCTAssertEqual(replies.count, 4)
        XCTAssertEqual(try replies[0].get().body, [.array(element: "v", values.map { .variant($0) })])
        XCTAssertEqual(try replies[3].get().body, try replies[0].get().body)
        XCTAssertThrowsError(try replies[1].get()) { error in
            XCTAssertEqual(error as? BusError, BusError("io.ringmaster.Test.Error.Nope", "failed on purpose"))
        }
        XCTAssertThrowsError(try replies[2].get()) { error in
            XCTAssertEqual((error as? BusError)?.name, BusError.invalidArgs)
        }
        XCTAssertNotNil(client.uniqueName)

        let all = try client.getAllProperties(destination: name, path: Bus.encodePath(prefix: "/test/items", "a-b"),
                                              interface: "io.ringmaster.Test.Item")
        XCTAssertEqual(all["Name"], .string("a-b"))
        XCTAssertTrue(try client.hasOwner(name))
        XCTAssertFalse(try client.hasOwner(name + ".Nobody"))
        XCTAssertThrowsError(try client.call(destination: name + ".Nobody", path: "/", interface: "x.Y", member: "Z")) { error in
            XCTAssertTrue((error as? BusError)?.isNoOwner ?? false, "\(error)")
        }

        // Signals through a match.
        try client.addMatch("type='signal',sender='\(name)',path='/test',interface='io.ringmaster.Test',member='Ping'")
        try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test", member: "Emit")
        let ping = try client.nextSignal()
        XCTAssertEqual(ping.member, "Ping")
        XCTAssertEqual(ping.body, [.string("hello")])

        // No reply in time: a timeout, not a hang.
        XCTAssertThrowsError(try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test",
                                             member: "Echo", [.array(element: "v", [])], timeout: 0)) { error in
            XCTAssertEqual((error as? BusError)?.name, BusError.timeout)
        }
    }

    func testWireClientConnectErrors() {
        XCTAssertThrowsError(try BusConnection(address: "unix:path=/nonexistent/bus")) { error in
            XCTAssertEqual((error as? BusConnectionError)?.errno, ENOENT)
        }
        XCTAssertThrowsError(try BusConnection(address: "tcp:host=localhost,port=1")) { error in
            XCTAssertEqual((error as? BusConnectionError)?.errno, EINVAL)
        }
    }
}

/// The server side: one Bus on its own EventLoop, on its own thread.
private final class TestServer {
    private let done = DispatchSemaphore(value: 0)
    private var failure: Error?
    private let name: String

    private init(name: String) { self.name = name }

    static func start(name: String) throws -> TestServer {
        let server = TestServer(name: name)
        let ready = DispatchSemaphore(value: 0)
        Thread.detachNewThread { server.run(ready: ready) }
        ready.wait()
        if let failure = server.failure { throw failure }
        return server
    }

    func stop() {
        if let client = try? Bus.user() {
            _ = try? client.call(destination: name, path: "/test", interface: "io.ringmaster.Test", member: "Quit")
        }
        done.wait()
    }

    private func run(ready: DispatchSemaphore) {
        defer { done.signal() }
        do {
            let loop = try EventLoop()
            let bus = try Bus.user()
            try bus.attach(to: loop)
            var counter: UInt32 = 0
            let test = BusInterface(
                name: "io.ringmaster.Test",
                methods: [
                    BusMethod("Echo", in: [BusArgument("values", "av")], out: [BusArgument("values", "av")]) { call in
                        [try call.message.readValue()]
                    },
                    BusMethod("Fail", in: [BusArgument("name", "s")]) { call in
                        throw BusError(try call.message.readString(), "failed on purpose")
                    },
                    BusMethod("Emit") { _ in
                        counter += 1
                        try bus.emitSignal(path: "/test", interface: "io.ringmaster.Test", member: "Ping", [.string("hello")])
                        try bus.emitPropertiesChanged(path: "/test", interface: "io.ringmaster.Test", ["Counter"])
                        return []
                    },
                    BusMethod("Quit") { _ in loop.exit(0); return [] },
                ],
                properties: [
                    BusProperty("Const", "s", .constant) { _ in .string("constant") },
                    BusProperty("Counter", "u", .emitsChange) { _ in .uint32(counter) },
                ],
                signals: [BusSignal("Ping", [BusArgument("text", "s")])])
            let item = BusInterface(name: "io.ringmaster.Test.Item", properties: [
                BusProperty("Name", "s", .constant) { path in .string(Bus.decodePath(prefix: "/test/items", path) ?? "?") },
            ])
            let names = ["a-b", "c"]
            let slots = [
                try bus.addObject(path: "/test", interface: test),
                try bus.addFallback(prefix: "/test/items", interface: item) { path in
                    Bus.decodePath(prefix: "/test/items", path).map(names.contains) ?? false
                },
                try bus.addNodeEnumerator(prefix: "/test/items") { _ in names.map { Bus.encodePath(prefix: "/test/items", $0) } },
            ]
            try bus.requestName(name)
            ready.signal()
            try withExtendedLifetime(slots) { _ = try loop.run() }
        } catch {
            failure = error
            ready.signal()
        }
    }
}
