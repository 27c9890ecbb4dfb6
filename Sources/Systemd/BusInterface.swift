/// A D-Bus interface described in Swift: what `Bus.addObject` and `Bus.addFallback` export.
/// The C vtable is built from it (BusVtable.swift); introspection shows exactly this, with
/// argument names.
public struct BusInterface {
    public var name: String
    public var methods: [BusMethod]
    public var properties: [BusProperty]
    public var signals: [BusSignal]

    public init(name: String, methods: [BusMethod] = [], properties: [BusProperty] = [], signals: [BusSignal] = []) {
        self.name = name
        self.methods = methods
        self.properties = properties
        self.signals = signals
    }
}

/// A named, typed argument of a method or signal, e.g. `("name", "s")`.
public struct BusArgument: Sendable {
    public var name: String
    public var signature: String
    public init(_ name: String, _ signature: String) {
        self.name = name
        self.signature = signature
    }
}

/// What a method handler gets: the call (to read arguments and the sender's credentials)
/// and the object path it was made on (for fallback objects, which one).
public struct BusCall {
    public let message: BusMessage
    public let path: String
}

public struct BusMethod {
    public var name: String
    public var inputs: [BusArgument]
    public var outputs: [BusArgument]
    /// Returns the reply's values (matching `outputs`), or throws a `BusError` for an error
    /// reply. Any other error is replied as org.freedesktop.DBus.Error.Failed.
    public var handler: (BusCall) throws -> [BusValue]

    public init(_ name: String, in inputs: [BusArgument] = [], out outputs: [BusArgument] = [],
                handler: @escaping (BusCall) throws -> [BusValue]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.handler = handler
    }
}

public struct BusProperty {
    /// When the value changes, and what clients are told.
    public enum Change: Sendable {
        /// never changes for the object's lifetime
        case constant
        /// PropertiesChanged carries the new value (emitted by `Bus.emitPropertiesChanged`)
        case emitsChange
        /// changes without notice (e.g. CPU time): clients must poll
        case unannounced
        /// changes without notice and costs something to compute: left out of GetAll,
        /// GetManagedObjects and InterfacesAdded (SD_BUS_VTABLE_PROPERTY_EXPLICIT); read it
        /// with Get
        case explicit
    }

    public var name: String
    public var signature: String
    public var change: Change
    /// The value at `path`; it must have `signature`.
    public var getter: (_ path: String) throws -> BusValue

    public init(_ name: String, _ signature: String, _ change: Change,
                getter: @escaping (_ path: String) throws -> BusValue) {
        self.name = name
        self.signature = signature
        self.change = change
        self.getter = getter
    }
}

public struct BusSignal: Sendable {
    public var name: String
    public var arguments: [BusArgument]
    public init(_ name: String, _ arguments: [BusArgument] = []) {
        self.name = name
        self.arguments = arguments
    }
}
