// swift-tools-version:5.9
import PackageDescription

// Layering (every import points down):
//   ringmasterd, ringctl            executables
//   RingmasterRuntime               the imperative shell: spawner, supervisor, sockets
//   Systemd                         typed owning wrappers over libsystemd (the only CSystemd importer)
//   RingmasterCore, CRingShims      pure supervision logic + config; the C that Swift can't express
//   CSystemd                        libsystemd (sd-event, sd-bus, sd-journal, sd-daemon)
// The daemon deliberately links no Foundation (idle RSS budget, see docs/architecture.md).
let package = Package(
    name: "Ringmaster",
    products: [
        .executable(name: "ringmasterd", targets: ["ringmasterd"]),
        .executable(name: "ringctl", targets: ["ringctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CRingShims"),
        .target(name: "Systemd", dependencies: ["CSystemd", "CRingShims"]),
        .target(name: "RingmasterCore"),
        .target(name: "RingmasterRuntime", dependencies: ["RingmasterCore", "Systemd", "CRingShims"]),
        // Non-PIE: no 19,000 relative relocations to read and apply at every start, so less of
        // the executable is faulted in and dirtied (idle RSS −0.36 MiB, see contrib/bench/analysis.md).
        // The cost: the executable itself is not ASLR'd (libraries, stack, heap still are).
        .executableTarget(name: "ringmasterd", dependencies: ["RingmasterRuntime", "RingmasterCore", "Systemd", "CRingShims"],
                          linkerSettings: [.unsafeFlags(["-Xlinker", "-no-pie"])]),
        .executableTarget(name: "ringctl", dependencies: [
            "RingmasterCore", "Systemd",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "RingmasterCoreTests", dependencies: ["RingmasterCore"]),
        .testTarget(name: "RingmasterRuntimeTests", dependencies: ["RingmasterRuntime", "RingmasterCore"]),
        .testTarget(name: "IntegrationTests", dependencies: []),
    ]
)
