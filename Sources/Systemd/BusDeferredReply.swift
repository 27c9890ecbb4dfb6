import CSystemd
import DBus
import Glibc

/// A method call answered later: a handler that cannot answer at once keeps the call
/// (`BusDeferredReply(call)`) and throws `BusReplyDeferred`; the method's reply (or error)
/// is sent when `reply`/`fail` is called, from the loop, at most once. A client that hung
/// up meanwhile just gets nothing (the bus drops the reply).
public final class BusDeferredReply {
    private let call: BusMessage
    public private(set) var isAnswered = false

    public init(_ call: BusCall) { self.call = call.message }

    /// Thrown by a method handler that will answer through a `BusDeferredReply`.
    public struct Later: Error { public init() {} }

    /// The caller asked for no reply (NO_REPLY_EXPECTED): nothing is sent.
    private var wantsReply: Bool { sd_bus_message_get_expect_reply(call.handle) > 0 }

    public func reply(_ values: [BusValue] = []) throws {
        guard !isAnswered else { return }
        isAnswered = true
        guard wantsReply else { return }
        var reply: OpaquePointer?
        _ = try check(sd_bus_message_new_method_return(call.handle, &reply), "sd_bus_message_new_method_return")
        let message = BusMessage(adopting: reply!)
        try message.append(values)
        _ = try check(sd_bus_send(nil, message.handle, nil), "sd_bus_send")
    }

    public func fail(_ error: BusError) throws {
        guard !isAnswered else { return }
        isAnswered = true
        guard wantsReply else { return }
        var e = sd_bus_error()
        defer { sd_bus_error_free(&e) }
        _ = sd_bus_error_set(&e, error.name, error.message)
        _ = try check(sd_bus_reply_method_error(call.handle, &e), "sd_bus_reply_method_error")
    }
}
