import Crypto
import Foundation
import Testing

@testable import BootMedium

/// Writes an image to a file (the tests' ImageSink).
final class FATFileSink: ImageSink {
    let fd: Int32
    let path: String
    private(set) var count: Int64 = 0
    private(set) var writes = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw BootMediumError(.io, "open \(path)") }
    }

    deinit { close(fd) }

    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: path)
        count += Int64(bytes.count)
        writes += 1
    }
}

/// A scratch directory removed at deinit.
final class FATScratch: @unchecked Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.path + "/bootmedium-fat-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Deterministic pseudo-random bytes (xorshift64*).
func fatTestBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        let v = state &* 0x2545_F491_4F6C_DD1D
        for i in 0..<8 where out.count < count { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
    return out
}

func fatSHA256(_ path: String) throws -> String {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty { hasher.update(data: chunk) }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

func readBytes(_ path: String, offset: Int64 = 0, count: Int) throws -> [UInt8] {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    return [UInt8](try handle.read(upToCount: count) ?? Data())
}

let mtoolsEnvironment: [String: String] = {
    var env = ProcessInfo.processInfo.environment
    env["MTOOLS_SKIP_CHECK"] = "1"
    return env
}()

/// Runs a tool and returns (status, stdout + stderr as text).
@discardableResult
func fatTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, text: String, stdout: Data) {
    let r = try runProcess(executable, arguments, environment: mtoolsEnvironment)
    return (r.status, String(decoding: r.stdout, as: UTF8.self) + r.stderr, r.stdout)
}

/// The SYSLINUX payload carved from Debian's /usr/bin/syslinux (docs/syslinux-install.md §1): the
/// template found by content, the lengths from the (mtime, length) table in .rodata.
enum TestSyslinux {
    static let binary = "/usr/bin/syslinux"
    static let mbrBin = "/usr/lib/syslinux/mbr/mbr.bin"

    static func payload() throws -> SyslinuxPayload {
        let bin = [UInt8](try Data(contentsOf: URL(fileURLWithPath: binary)))
        let head: [UInt8] = [0xEB, 0x58, 0x90] + Array("SYSLINUX".utf8)
        var template: Int?
        for i in 0..<(bin.count - 512) where bin[i] == 0xEB && Array(bin[i..<(i + 11)]) == head {
            if bin.le32(at: i + 0x1F8) == 0x3EB2_02FE && bin[i + 0x1FE] == 0x55 && bin[i + 0x1FF] == 0xAA {
                template = i
                break
            }
        }
        let t = try #require(template, "no SYSLINUX boot sector template in \(binary)")
        var lengths: (Int, Int)?
        for j in stride(from: 0, to: bin.count - 24, by: 4) where bin.le32(at: j + 4) == 512 {
            let stamp = bin.le32(at: j)
            if bin.le32(at: j + 8) == stamp && bin.le32(at: j + 16) == stamp {
                let l = Int(bin.le32(at: j + 12)), c = Int(bin.le32(at: j + 20))
                if l % 512 == 0 && t + 512 + l + c <= bin.count { lengths = (l, c); break }
            }
        }
        let (l, c) = try #require(lengths, "no (mtime, length) table in \(binary)")
        return try SyslinuxPayload(
            bootSectorTemplate: Array(bin[t..<(t + 512)]), ldlinuxSys: Array(bin[(t + 512)..<(t + 512 + l)]),
            ldlinuxC32: Array(bin[(t + 512 + l)..<(t + 512 + l + c)]))
    }

    static func mbrCode() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: mbrBin))) }
}

/// A small independent-of-the-writer FAT reader for the tests, built on the structure decoders:
/// finds a file's clusters and sectors in an image made by anyone (mkfs.fat + syslinux, or us).
struct TestFATReader {
    let image: String
    /// Byte offset of the volume in the image.
    let volumeOffset: Int64
    let boot: FATBootSector
    let fat: FileAllocationTable
    let clusterCount: Int
    var spc: Int { Int(boot.sectorsPerCluster) }
    var dataStart: Int {
        Int(boot.reservedSectors) + Int(boot.fatCount) * Int(boot.sectorsPerFAT) + Int(boot.rootEntryCount) * 32 / 512
    }

    init(image: String, volumeOffset: Int64 = 0) throws {
        self.image = image
        self.volumeOffset = volumeOffset
        boot = try FATBootSector(decoding: try readBytes(image, offset: volumeOffset, count: 512))
        let dataSectors = Int(boot.totalSectors) - (Int(boot.reservedSectors) + Int(boot.fatCount) * Int(boot.sectorsPerFAT) + Int(boot.rootEntryCount) * 32 / 512)
        clusterCount = dataSectors / Int(boot.sectorsPerCluster)
        let fatBytes = try readBytes(image, offset: volumeOffset + Int64(boot.reservedSectors) * 512, count: Int(boot.sectorsPerFAT) * 512)
        fat = try FileAllocationTable(decoding: fatBytes, type: boot.type, clusterCount: clusterCount)
    }

    func sectors(ofChain first: Int) throws -> [Int] {
        try fat.chain(from: first).flatMap { c in (0..<spc).map { dataStart + (c - 2) * spc + $0 } }
    }

    /// Raw directory bytes of the root.
    func rootDirectory() throws -> [UInt8] {
        if boot.type == .fat16 {
            let start = Int(boot.reservedSectors) + Int(boot.fatCount) * Int(boot.sectorsPerFAT)
            return try readBytes(image, offset: volumeOffset + Int64(start) * 512, count: Int(boot.rootEntryCount) * 32)
        }
        return try read(sectors: try sectors(ofChain: Int(boot.fat32!.rootCluster)))
    }

    func read(sectors: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for s in sectors { out += try readBytes(image, offset: volumeOffset + Int64(s) * 512, count: 512) }
        return out
    }

    /// Entries of a directory: (long name or display name, entry).
    static func entries(_ bytes: [UInt8]) throws -> [(name: String, entry: DirectoryEntry)] {
        var result: [(String, DirectoryEntry)] = []
        var pending: [LongNameEntry] = []
        for i in stride(from: 0, to: bytes.count, by: 32) {
            let raw = Array(bytes[i..<(i + 32)])
            if raw[0] == 0 { break }
            if raw[0] == 0xE5 { pending = []; continue }
            if raw[11] == FATAttributes.longName { pending.append(try LongNameEntry(decoding: raw)); continue }
            let entry = DirectoryEntry(decoding: raw)
            var name = entry.displayName
            if !pending.isEmpty, let long = LongNameEntry.name(from: pending),
                pending[0].checksum == LongNameEntry.checksum(of: entry.name)
            {
                name = long
            }
            pending = []
            result.append((name, entry))
        }
        return result
    }

    func rootEntry(_ name: String) throws -> DirectoryEntry {
        try #require(try Self.entries(try rootDirectory()).first { $0.name == name }?.entry, "no \(name) in the root")
    }
}
