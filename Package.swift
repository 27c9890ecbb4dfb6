// swift-tools-version:5.9
import PackageDescription

// Layering (every import points down):
//   ringmasterd, ringctl            executables
//   RingmasterRuntime               the imperative shell: spawner, supervisor, sockets
//   ConfigFiles                     reading the configuration files (the core parses them)
//   Systemd                         typed owning wrappers over libsystemd (the only CSystemd importer)
//   RingmasterCore, CRingShims,     pure supervision logic + config; the C that Swift can't express;
//   DBus                            D-Bus values, the wire format and a client without libsystemd
//   CSystemd                        libsystemd (sd-event, sd-bus, sd-journal, sd-daemon)
// The daemon deliberately links no Foundation (idle RSS budget, see docs/architecture.md).
let package = Package(
    name: "Ringmaster",
    products: [
        .executable(name: "ringmasterd", targets: ["ringmasterd"]),
        .executable(name: "ringctl", targets: ["ringctl"]),
    ],
    dependencies: [],
    targets: [
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CRingShims"),
        .target(name: "DBus"),
        .target(name: "Systemd", dependencies: ["CSystemd", "CRingShims", "DBus"]),
        .target(name: "RingmasterCore"),
        // The configuration's file I/O (default path, conf.d, safe reads) for both executables;
        // the core parses the bytes.
        .target(name: "ConfigFiles", dependencies: ["RingmasterCore"]),
        .target(name: "RingmasterRuntime", dependencies: ["RingmasterCore", "ConfigFiles", "Systemd", "DBus", "CRingShims"]),
        // Non-PIE: no 19,000 relative relocations to read and apply at every start, so less of
        // the executable is faulted in and dirtied (see contrib/bench/analysis.md).
        // The cost: the executable itself is not ASLR'd (libraries, stack, heap still are).
        .executableTarget(name: "ringmasterd", dependencies: ["RingmasterRuntime", "RingmasterCore", "ConfigFiles", "Systemd", "CRingShims"],
                          linkerSettings: [.unsafeFlags(["-Xlinker", "-no-pie"])]),
        // ringctl links no libsystemd (it speaks D-Bus itself, see Sources/DBus) so that it can be
        // one static executable: no dynamic loading, ~1 ms to start (docs/benchmarks.md).
        .executableTarget(name: "ringctl", dependencies: ["RingmasterCore", "ConfigFiles", "DBus"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),
        // What more than one test target needs: a seeded generator, config samples and their
        // mutations (no dependency on the code under test).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "RingmasterCoreTests", dependencies: ["RingmasterCore", "ConfigFiles", "TestSupport"]),
        .testTarget(name: "DBusTests", dependencies: ["DBus"]),
        .testTarget(name: "RingmasterRuntimeTests", dependencies: ["RingmasterRuntime", "RingmasterCore", "Systemd", "DBus"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport"]),
    ]
)
