import RingmasterCore
import Systemd

/// io.ringmaster.Ringmaster1.Manager at /io/ringmaster/Ringmaster1.
extension BusService {
    func managerInterface() -> BusInterface {
        let name = BusArgument("name", "s")
        /// A mutating method whose first argument is a service name.
        func serviceCommand(_ member: String, extra: [BusArgument] = [],
                            _ body: @escaping (BusService, String, BusMessage) throws(ControlError) -> Void) -> BusMethod {
            BusMethod(member, in: [name] + extra) { [unowned self] call in
                let service = try call.message.readString()
                return try self.command(call) { () throws(ControlError) in try body(self, service, call.message) }
            }
        }
        return BusInterface(
            name: RingmasterBus.managerInterface,
            methods: [
                BusMethod("ListServices", out: [BusArgument("services", "a(ssuuo)")]) { [unowned self] _ in
                    [.array(element: "(ssuuo)", self.supervisor.services.map { slot in
                        .structure([.string(slot.name), .string(slot.machine.state.rawValue),
                                    .uint32(UInt32(slot.machine.running)), .uint32(UInt32(slot.wantedInstances)),
                                    .objectPath(BusService.path(of: slot.name))])
                    })]
                },
                BusMethod("GetService", in: [name], out: [BusArgument("path", "o")]) { [unowned self] call in
                    let service = try call.message.readString()
                    guard self.supervisor.slot(named: service) != nil else {
                        throw BusService.busError(.noSuchService(service))
                    }
                    return [.objectPath(BusService.path(of: service))]
                },
                serviceCommand("StartService") { s, service, _ throws(ControlError) in try s.start(service) },
                serviceCommand("StopService") { s, service, _ throws(ControlError) in try s.stop(service) },
                serviceCommand("RestartService") { s, service, _ throws(ControlError) in try s.restart(service) },
                serviceCommand("ScaleService", extra: [BusArgument("instances", "u")]) { s, service, m throws(ControlError) in
                    guard let count = try? m.readUInt32() else { throw .invalidArgument("missing instances") }
                    try s.scale(service, count)
                },
                serviceCommand("KillService", extra: [BusArgument("signal", "i")]) { s, service, m throws(ControlError) in
                    guard let signal = try? m.readInt32() else { throw .invalidArgument("missing signal") }
                    try s.kill(service, signal)
                },
                BusMethod("Reload") { [unowned self] call in
                    try self.authorize(call)
                    try self.reload()
                    return []
                },
                serviceCommand("ReloadService") { s, service, _ throws(ControlError) in try s.reloadService(service) },
            ] + jobMethods(),
            properties: [
                BusProperty("Version", "s", .constant) { _ in .string(ringmasterVersion) },
                BusProperty("State", "s", .emitsChange) { [unowned self] _ in .string(self.daemon.state.rawValue) },
                BusProperty("ConfigFiles", "as", .emitsChange) { [unowned self] _ in
                    .strings(self.supervisor.config.files)
                },
            ],
            signals: [
                BusSignal("ServiceStateChanged", [name, BusArgument("state", "s")]),
                BusSignal("ProcessStarted", [name, BusArgument("instance", "u"), BusArgument("pid", "u")]),
                BusSignal("ProcessExited", [name, BusArgument("instance", "u"), BusArgument("pid", "u"),
                                            BusArgument("code", "s"), BusArgument("status", "i")]),
                BusSignal("Reloaded", [BusArgument("ok", "b"), BusArgument("message", "s")]),
            ]
        )
    }
}
