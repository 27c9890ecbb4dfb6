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
/// server on its own thread and sd-event loop, ringctl's client on the test's thread.
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

    /// The daemon's side (Bus, BusMessage, vtables) answering ringctl's client
    /// (DBus.BusConnection: the wire protocol in Swift) through the real bus: both
    /// marshallers must agree on every type, both ways.
    func testObjectsMethodsPropertiesSignalsAndErrors() throws {
        let name = "io.ringmaster.Test.P\(getpid())"
        let server = try TestServer.start(name: name)
        defer { server.stop() }
        let client = try BusConnection.user()
        func call(_ path: String, _ interface: String, _ member: String, _ arguments: [BusValue] = []) -> WireMessage {
            .methodCall(destination: name, path: path, interface: interface, member: member, arguments)
        }

        // Every type, nested, written by one side and read by the other, both ways; an error
        // reply keeps its name and message; sd-bus checks the signature before the handler
        // runs. Pipelined: four calls in one write, the replies matched to their calls.
        let values: [BusValue] = [.array(element: "v", everyType.map { .variant($0) })]
        let echo = call("/test", "io.ringmaster.Test", "Echo", values)
        let replies = try client.callAll([echo, call("/test", "io.ringmaster.Test", "Fail", [.string("io.ringmaster.Test.Error.Nope")]),
                                          call("/test", "io.ringmaster.Test", "Fail", [.uint32(1)]), echo])
        XCTAssertEqual(replies.count, 4)
        XCTAssertEqual(try replies[0].get().body, values)
        XCTAssertEqual(try replies[3].get().body, values)
        XCTAssertThrowsError(try replies[1].get()) { error in
            XCTAssertEqual(error as? BusError, BusError("io.ringmaster.Test.Error.Nope", "failed on purpose"))
        }
        XCTAssertThrowsError(try replies[2].get()) { error in
            XCTAssertEqual((error as? BusError)?.name, BusError.invalidArgs)
        }
        XCTAssertNotNil(client.uniqueName)

        // Properties, on the plain object and on the fallback's objects.
        let properties = "org.freedesktop.DBus.Properties", item = "io.ringmaster.Test.Item", items = "/test/items"
        XCTAssertEqual(try client.call(destination: name, path: "/test", interface: properties, member: "Get",
                                       [.string("io.ringmaster.Test"), .string("Const")]).body,
                       [.variant(.string("constant"))])
        let all = try client.call(destination: name, path: Bus.encodePath(prefix: items, "a-b"), interface: properties,
                                  member: "GetAll", [.string(item)])
        XCTAssertEqual(all.body.first?.stringKeyedDictionary?["Name"], .string("a-b"))
        XCTAssertThrowsError(try client.call(destination: name, path: Bus.encodePath(prefix: items, "zz"), interface: properties,
                                             member: "GetAll", [.string(item)])) { error in
            XCTAssertEqual((error as? BusError)?.name, BusError.unknownObject)
        }
        // The node enumerator lists them for introspection (busctl tree); argument names reach it.
        let introspect = try client.callAll([call(items, "org.freedesktop.DBus.Introspectable", "Introspect"),
                                             call("/test", "org.freedesktop.DBus.Introspectable", "Introspect")])
        let xml = try introspect[0].get().body.first?.string ?? ""
        XCTAssertTrue(xml.contains("<node name=\"a_2db\"/>") && xml.contains("<node name=\"c\"/>"), xml)
        let testXML = try introspect[1].get().body.first?.string ?? ""
        XCTAssertTrue(testXML.contains("<arg type=\"av\" name=\"values\" direction=\"in\"/>"), testXML)
        XCTAssertTrue(testXML.contains("<arg type=\"s\" name=\"text\"/>"), testXML)

        // Owners.
        XCTAssertTrue(try client.hasOwner(name))
        XCTAssertFalse(try client.hasOwner(name + ".Nobody"))
        XCTAssertThrowsError(try client.call(destination: name + ".Nobody", path: "/", interface: "x.Y", member: "Z")) { error in
            XCTAssertTrue((error as? BusError)?.isNoOwner ?? false, "\(error)")
        }

        // A signal and PropertiesChanged, both received through matches.
        try client.addMatch("type='signal',sender='\(name)',path='/test',interface='io.ringmaster.Test',member='Ping'")
        try client.addMatch("type='signal',sender='\(name)',path='/test',interface='\(properties)',member='PropertiesChanged'")
        try client.call(destination: name, path: "/test", interface: "io.ringmaster.Test", member: "Emit")
        let signals = [try client.nextSignal(), try client.nextSignal()]
        let ping = try XCTUnwrap(signals.first { $0.member == "Ping" })
        XCTAssertEqual(ping.body, [.string("hello")])
        let changed = try XCTUnwrap(signals.first { $0.member == "PropertiesChanged" })
        XCTAssertEqual(changed.body.first, .string("io.ringmaster.Test"))
        XCTAssertEqual(changed.body.dropFirst().first?.stringKeyedDictionary?["Counter"], .uint32(1))

        // No reply in time: a timeout, not a hang. (A call to the client itself, which answers
        // no call, so no reply can beat the deadline however the threads are scheduled.)
        let me = try XCTUnwrap(client.uniqueName)
        XCTAssertThrowsError(try client.call(destination: me, path: "/", interface: "x.Y", member: "Z", timeout: 50_000)) { error in
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
        if let client = try? BusConnection.user() {
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
