// swift-tools-version: 6.2
// libFuzzer targets for bootmedium's image readers (issue #9) and request-path readers (issue #15).
// A side package so the main package and its `swift build` stay untouched: build and run it with
// `tools/fuzz`.
import Foundation
import PackageDescription

/// The main package: the parent directory, or `BOOTMEDIUM_FUZZ_PACKAGE` (e.g. a snapshot of one
/// commit, so that a long run does not follow edits in the working tree). SwiftPM names a path
/// dependency after its last path component, so derive that name instead of assuming one.
let parent = ProcessInfo.processInfo.environment["BOOTMEDIUM_FUZZ_PACKAGE"].map { URL(fileURLWithPath: $0) }
    ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let mainPackage = parent.standardizedFileURL.lastPathComponent

/// Each target defines `LLVMFuzzerTestOneInput` (libFuzzer supplies `main`).
let fuzzTarget: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let targets = ["FuzzISO9660", "FuzzFAT", "FuzzCpioOverlay", "FuzzBootConfig", "FuzzInspect", "FuzzCramfs",
               "FuzzPLCConfig", "FuzzNodeStore", "FuzzTreeFacts"]

let package = Package(
    name: "bootmedium-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: parent.standardizedFileURL.path)],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "BootMedium", package: mainPackage)],
            path: "Sources/FuzzSupport"),
    ] + targets.map { name in
        .executableTarget(
            name: name,
            dependencies: ["FuzzSupport", .product(name: "BootMedium", package: mainPackage)],
            path: "Sources/\(name)",
            swiftSettings: fuzzTarget)
    }
)
