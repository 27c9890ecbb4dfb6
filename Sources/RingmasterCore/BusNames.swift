// The names of the io.ringmaster.Ringmaster1 D-Bus API (SPEC.md "Names"), shared by the
// daemon's BusService and ringctl. docs/dbus.md documents them.

public enum RingmasterBus {
    /// The well-known name ringmasterd takes on the user bus.
    public static let name = "io.ringmaster.Ringmaster1"
    public static let managerPath = "/io/ringmaster/Ringmaster1"
    public static let managerInterface = "io.ringmaster.Ringmaster1.Manager"
    /// Service objects live at servicePathPrefix + "/" + sd_bus_path_encode(name).
    public static let servicePathPrefix = "/io/ringmaster/Ringmaster1/service"
    public static let serviceInterface = "io.ringmaster.Ringmaster1.Service"

    /// io.ringmaster.Ringmaster1.Error.*
    public enum ErrorName {
        public static let noSuchService = "io.ringmaster.Ringmaster1.Error.NoSuchService"
        public static let invalidConfig = "io.ringmaster.Ringmaster1.Error.InvalidConfig"
        public static let invalidArgument = "io.ringmaster.Ringmaster1.Error.InvalidArgument"
        public static let accessDenied = "io.ringmaster.Ringmaster1.Error.AccessDenied"
        public static let failed = "io.ringmaster.Ringmaster1.Error.Failed"
        /// a …AndWait call's change did not succeed (the message says what failed and why)
        public static let jobFailed = "io.ringmaster.Ringmaster1.Error.JobFailed"
        /// ReloadService / Service.Reload of a service without `reload-signal`
        public static let noReloadSignal = "io.ringmaster.Ringmaster1.Error.NoReloadSignal"
    }
}
