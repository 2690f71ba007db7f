// swift-tools-version: 6.2
import PackageDescription

/// Our own targets build with every warning treated as an error.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]
/// The library's test seams (hooks the tests set to change a file under a running writer)
/// exist in debug builds only: a release binary carries none.
let library: [SwiftSetting] = strict + [.define("BOOTMEDIUM_TEST_SEAMS", .when(configuration: .debug))]

let package = Package(
    name: "bootmedium",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "BootMedium", targets: ["BootMedium"]),
        .library(name: "BootMediumPostgres", targets: ["BootMediumPostgres"]),
        .executable(name: "bootmedium", targets: ["bootmedium"]),
        .executable(name: "bootmedium-server", targets: ["bootmedium-server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The server's alone (docs/server.md): neither the library nor the CLI links them.
        // Hummingbird without its default traits: no swift-configuration, nothing we use.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The PLC database (issue 20): the CLI and the server link it through BootMediumPostgres,
        // the library does not.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CIsofs", path: "Sources/CIsofs", pkgConfig: "libisofs-1",
            providers: [.apt(["libisofs-dev"])]),
        .systemLibrary(
            name: "CArchive", path: "Sources/CArchive",
            providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(
            name: "CBlkid", path: "Sources/CBlkid", pkgConfig: "blkid",
            providers: [.apt(["libblkid-dev"])]),
        // Linux calls without a C library wrapper (openat2), as static inline functions.
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
        .systemLibrary(
            name: "CCrypt", path: "Sources/CCrypt", pkgConfig: "libxcrypt",
            providers: [.apt(["libcrypt-dev"])]),
        .target(
            name: "CCramfs", path: "Sources/CCramfs",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-Werror"])],
            linkerSettings: [.linkedLibrary("z")]),
        .target(
            name: "BootMedium",
            dependencies: [
                "CIsofs", "CArchive", "CBlkid", "CCrypt", "CCramfs", "CLinux",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: library,
            // libarchive comes from its static archive in release builds: only the cpio, gzip and
            // raw code we call is linked in, without libarchive's libxml2 and ICU, whose loading,
            // initialisation and teardown cost ~1 ms of every run (README, benchmarks). The
            // decompressors that `archive_read_support_filter_all` reaches stay shared. Debug
            // builds (tests) link the shared libarchive.
            linkerSettings: [
                .linkedLibrary("archive", .when(configuration: .debug)),
                .linkedLibrary(":libarchive.a", .when(configuration: .release)),
                .linkedLibrary("z", .when(configuration: .release)),
                .linkedLibrary("bz2", .when(configuration: .release)),
                .linkedLibrary("lzma", .when(configuration: .release)),
                .linkedLibrary("zstd", .when(configuration: .release)),
                .linkedLibrary("lz4", .when(configuration: .release)),
            ],
            // templates/*.mustache compiled in: nothing on disk at run time changes an image.
            plugins: ["EmbedTemplates"]),
        // The PLC database as node store and person source (docs/database.md).
        .target(
            name: "BootMediumPostgres",
            dependencies: [
                "BootMedium",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "bootmedium",
            dependencies: [
                "BootMedium",
                "BootMediumPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict,
            // Release builds link the Swift runtime and Foundation in: the dynamic loader's share
            // of every run drops from ~8 ms to ~3 ms (README, benchmarks). The archives' own
            // dependencies are named, grouped, since only modules compiled for static linking
            // record them. Debug builds (the tests link this module) stay dynamic.
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "--start-group", "-lFoundation", "-lFoundationInternationalization", "-lFoundationEssentials", "-lCoreFoundation", "-l_FoundationICU", "-l_FoundationCollections", "-l_FoundationCShims", "-Xlinker", "--end-group"], .when(configuration: .release))]),
        // The API server (issue 19): PLCAPI's XML-RPC and media by URL, over the library.
        .executableTarget(
            name: "bootmedium-server",
            dependencies: [
                "BootMedium",
                "BootMediumPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict,
            // As the CLI's, with Foundation's XML parser and the libxml2 it calls (shared).
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "--start-group", "-lFoundation", "-lFoundationXML", "-l_CFXMLInterface", "-lxml2", "-lFoundationInternationalization", "-lFoundationEssentials", "-lCoreFoundation", "-l_FoundationICU", "-l_FoundationCollections", "-l_FoundationCShims", "-Xlinker", "--end-group"], .when(configuration: .release))]),
        // The build-time side of the templates: the plugin runs the tool (a host tool, in no
        // product), which writes EmbeddedTemplates.swift into BootMedium.
        .executableTarget(
            name: "embed-templates",
            path: "Sources/embed-templates",
            swiftSettings: strict),
        .plugin(
            name: "EmbedTemplates",
            capability: .buildTool(),
            dependencies: ["embed-templates"]),
        .testTarget(
            name: "BootMediumTests",
            dependencies: ["BootMedium", "BootMediumPostgres", "bootmedium"],
            // ServerClients: the Python clients ServerTests run against bootmedium-server (built
            // beside the tests: `swift build --build-tests` builds every product).
            exclude: ["Fuzz", "ServerClients"],
            resources: [.copy("Golden")],
            swiftSettings: strict),
        .testTarget(
            name: "CCramfsTests",
            dependencies: ["CCramfs"],
            swiftSettings: strict),
    ]
)
