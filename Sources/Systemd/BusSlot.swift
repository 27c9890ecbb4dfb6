import CSystemd

/// One registration on a `Bus` (an object, a fallback, a node enumerator, a signal match).
/// Owning: deinit (or `cancel()`) unregisters it, and only then releases what sd-bus was
/// pointing at (the vtable memory, the Swift handlers).
public final class BusSlot {
    private var handle: OpaquePointer?
    /// released after the slot, never before
    private let owned: AnyObject?

    init(_ handle: OpaquePointer, owning owned: AnyObject?) {
        self.handle = handle
        self.owned = owned
    }

    deinit { cancel() }

    /// Unregisters now; idempotent. What the slot owns is kept until deinit, so cancelling
    /// from inside one of its own handlers is safe.
    public func cancel() {
        if let h = handle {
            handle = nil
            sd_bus_slot_unref(h)
        }
    }
}

/// The Swift closure behind a node enumerator or a signal match.
final class BusCallbackBox<Handler> {
    let handler: Handler
    init(_ handler: Handler) { self.handler = handler }

    var userdata: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ userdata: UnsafeMutableRawPointer?) -> BusCallbackBox {
        Unmanaged<BusCallbackBox>.fromOpaque(userdata!).takeUnretainedValue()
    }
}
