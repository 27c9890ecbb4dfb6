import RingmasterCore
import Systemd

/// io.ringmaster.Ringmaster1.Service, one object per service at
/// /io/ringmaster/Ringmaster1/service/<sd_bus_path_encode(name)> (one fallback vtable).
extension BusService {
    /// A Service property: its D-Bus type, whether PropertiesChanged announces it, and how
    /// to read it off a service. `ServiceSnapshot` diffs the `.emitsChange` ones.
    struct ServiceProperty {
        let name: String
        let signature: String
        let change: BusProperty.Change
        /// (the service is nil for the snapshot of a property that does not need it)
        let value: (ServiceSlot, BusService?) -> BusValue
    }

    static let serviceProperties: [ServiceProperty] = [
        ServiceProperty(name: "Name", signature: "s", change: .constant) { slot, _ in .string(slot.name) },
        ServiceProperty(name: "State", signature: "s", change: .emitsChange) { slot, _ in
            .string(slot.machine.state.rawValue)
        },
        ServiceProperty(name: "Instances", signature: "u", change: .emitsChange) { slot, _ in
            .uint32(UInt32(slot.wantedInstances))
        },
        ServiceProperty(name: "Running", signature: "u", change: .emitsChange) { slot, _ in
            .uint32(UInt32(slot.machine.running))
        },
        ServiceProperty(name: "PIDs", signature: "au", change: .emitsChange) { slot, _ in
            .array(element: "u", slot.machine.pids.map { .uint32(UInt32(bitPattern: $0)) })
        },
        ServiceProperty(name: "Restarts", signature: "u", change: .emitsChange) { slot, _ in
            .uint32(UInt32(clamping: slot.machine.restarts))
        },
        ServiceProperty(name: "LastExitCode", signature: "s", change: .emitsChange) { slot, _ in
            .string(slot.machine.lastExit?.code.rawValue ?? "")
        },
        ServiceProperty(name: "LastExitStatus", signature: "i", change: .emitsChange) { slot, _ in
            .int32(slot.machine.lastExit?.status ?? 0)
        },
        ServiceProperty(name: "LastExitReason", signature: "s", change: .emitsChange) { slot, _ in
            .string(slot.machine.lastExitReason?.rawValue ?? "")
        },
        ServiceProperty(name: "StateChangeTimestamp", signature: "t", change: .emitsChange) { slot, _ in
            .uint64(slot.stateChangedRealtime)
        },
        // From the service's cgroup where it is delegated (every process, setsid ones included,
        // and the CPU time of instances that ended); else summed from /proc over its process groups.
        ServiceProperty(name: "CPUUsageNSec", signature: "t", change: .unannounced) { slot, service in
            guard let supervisor = service?.supervisor else { return .uint64(0) }
            return .uint64(supervisor.cgroups?.cpuUsageNSec(service: slot.name) ?? slot.metrics(supervisor).cpuNSec)
        },
        ServiceProperty(name: "MemoryCurrent", signature: "t", change: .unannounced) { slot, service in
            guard let supervisor = service?.supervisor else { return .uint64(0) }
            return .uint64(supervisor.cgroups?.memoryCurrent(service: slot.name) ?? slot.metrics(supervisor).memoryBytes)
        },
        // Extensions beyond SPEC.md's minimum (docs/dbus.md):
        ServiceProperty(name: "FailureReason", signature: "s", change: .emitsChange) { slot, _ in
            .string(slot.machine.failureReason ?? "")
        },
        ServiceProperty(name: "StatusText", signature: "s", change: .emitsChange) { slot, _ in
            .string(slot.statusTexts.sorted { $0.key < $1.key }.map(\.value).joined(separator: "; "))
        },
        // The per-instance view (InstanceStates.swift): read per instance on a Get only.
        ServiceProperty(name: "InstanceStates", signature: "a" + ServiceSlot.instanceStateSignature, change: .explicit) {
            slot, service in
            guard let supervisor = service?.supervisor else { return .array(element: ServiceSlot.instanceStateSignature, []) }
            return slot.instanceStates(supervisor)
        },
        ServiceProperty(name: "Limits", signature: "a(ss)", change: .emitsChange) { slot, _ in slot.limitEntries },
    ]

    func serviceInterface() -> BusInterface {
        let properties = BusService.serviceProperties.map { p in
            BusProperty(p.name, p.signature, p.change) { [unowned self] path in
                p.value(try self.requireSlot(at: path), self)
            }
        }
        /// A method on the service the call's path names.
        func method(_ name: String, in inputs: [BusArgument] = [],
                    _ body: @escaping (BusService, String, BusMessage) throws -> Void) -> BusMethod {
            BusMethod(name, in: inputs) { [unowned self] call in
                let slot = try self.requireSlot(at: call.path)
                try self.authorize(call)
                try body(self, slot.name, call.message)
                return []
            }
        }
        return BusInterface(
            name: RingmasterBus.serviceInterface,
            methods: [
                method("Start") { s, name, _ in try s.mapped { () throws(ControlError) in try s.start(name) } },
                method("Stop") { s, name, _ in try s.mapped { () throws(ControlError) in try s.stop(name) } },
                method("Restart") { s, name, _ in try s.mapped { () throws(ControlError) in try s.restart(name) } },
                method("Scale", in: [BusArgument("instances", "u")]) { s, name, m in
                    let count = try m.readUInt32()
                    try s.mapped { () throws(ControlError) in try s.scale(name, count) }
                },
                method("Kill", in: [BusArgument("signal", "i")]) { s, name, m in
                    let signal = try m.readInt32()
                    try s.mapped { () throws(ControlError) in try s.kill(name, signal) }
                },
                method("Reload") { s, name, _ in try s.mapped { () throws(ControlError) in try s.reloadService(name) } },
            ],
            properties: properties
        )
    }

    /// Runs a command, turning its refusal into the API's error.
    func mapped(_ body: () throws(ControlError) -> Void) throws {
        do { try body() } catch { throw BusService.busError(error) }
    }
}

extension ServiceSlot {
    /// CPU time and memory of the service's processes, from /proc: measured once per loop
    /// iteration (a GetAll asks for both properties; one walk answers both).
    func metrics(_ supervisor: Supervisor) -> ProcessMetrics {
        let now = supervisor.now
        if let cached = metricsCache, cached.at == now { return cached.value }
        let value: ProcessMetrics
        let cgroups = processes.values.compactMap(\.cgroup)
        if supervisor.cgroups != nil, !cgroups.isEmpty {
            value = ProcessMetrics.of(pids: cgroups.flatMap(\.pids), descendants: false)
        } else {
            value = ProcessMetrics.of(pids: processes.values.compactMap(\.pid), descendants: true)
        }
        metricsCache = (now, value)
        return value
    }
}
