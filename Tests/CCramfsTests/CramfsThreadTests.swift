import CCramfs
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// ccramfs_write_options.threads: the same bytes, the same callback sequences, callbacks only on
/// the calling thread, clean failures.
@Suite("CCramfs writer threads")
struct CramfsThreadTests {
    /// Compared with threads = 1 (0 is the same path; see threadOptionLimitsAndTinyTrees).
    static let threadCounts: [UInt32] = [2, 4, 7]
    static let flagSets: [UInt32] = [
        0, CCRAMFS_WRITE_DEDUPLICATE, CCRAMFS_WRITE_SEQUENTIAL,
        CCRAMFS_WRITE_DEDUPLICATE | CCRAMFS_WRITE_SEQUENTIAL,
    ]

    /// Files of 4096·k and 4096·k ± 1 bytes (k = 1, 2, 3, 16), empty files, hard links, equal
    /// content with equal and with different attributes, symlinks; random, text and zero data.
    static func boundarySpec() -> CramfsSpec {
        var s = CramfsSpec()
        var seed: UInt64 = 100
        for k in [1, 2, 3, 16] {
            for d in [-1, 0, 1] {
                let n = 4096 * k + d
                seed += 1
                s.items["rand/r\(n)"] = CramfsItem(kind: .file, mode: 0o644, content: pseudoRandomBytes(n, seed: seed))
                let text = (0..<(n / 20 + 1)).map { "text line \($0)\n" }.joined()
                s.items["text/t\(n)"] = CramfsItem(kind: .file, mode: 0o644, content: Array(text.utf8.prefix(n)))
                s.items["zero/z\(n)"] = CramfsItem(kind: .file, mode: 0o600, content: [UInt8](repeating: 0, count: n))
            }
        }
        for d in ["rand", "text", "zero"] {
            s.items[d] = CramfsItem(kind: .directory, mode: 0o755)
        }
        s.items["empty"] = CramfsItem(kind: .directory, mode: 0o755)
        for e in ["e1", "e2", "e3"] { s.items["empty/" + e] = CramfsItem(kind: .file, mode: 0o644) }
        s.items["empty/e4"] = CramfsItem(kind: .file, mode: 0o600)
        // Equal content: same attributes (deduplicated) and different mode (never shared).
        s.items["dup"] = CramfsItem(kind: .directory, mode: 0o755)
        s.items["dup/a"] = s.items["rand/r8192"]
        s.items["dup/b"] = s.items["rand/r8192"]
        var other = s.items["rand/r8192"]!
        other.mode = 0o640
        s.items["dup/c"] = other
        s.items["dup/t"] = s.items["text/t12289"]
        // Hard links, one of them to a multi-block file.
        s.hardLinks["dup/hl-r65537"] = "rand/r65537"
        s.hardLinks["zero/hl-r4095"] = "rand/r4095"
        s.hardLinks["hl-e1"] = "empty/e1"
        s.items["links"] = CramfsItem(kind: .directory, mode: 0o755)
        s.items["links/l1"] = CramfsItem(kind: .symlink, mode: 0o777, target: "../rand/r4096")
        s.items["links/l2"] = CramfsItem(kind: .symlink, mode: 0o777, target: String(repeating: "x/", count: 2047) + "y")
        s.items["links/l3"] = CramfsItem(kind: .symlink, mode: 0o777, target: "../rand/r4096")
        return s
    }

    /// ~240 files of 0...16 KiB in nested directories (~650 blocks: the ring of every thread
    /// count wraps many times), some duplicates and hard links.
    static func manyFilesSpec() -> CramfsSpec {
        var s = CramfsSpec()
        var state: UInt64 = 0x1234_5678
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        for d in 0..<6 {
            s.items["d\(d)"] = CramfsItem(kind: .directory, mode: 0o755)
            s.items["d\(d)/s"] = CramfsItem(kind: .directory, mode: 0o755)
            for f in 0..<40 {
                let size = next(6) == 0 ? 4096 * next(5) : next(16 * 1024)
                let path = f % 3 == 0 ? "d\(d)/s/f\(f)" : "d\(d)/f\(f)"
                let content: [UInt8]
                switch next(3) {
                case 0: content = pseudoRandomBytes(size, seed: UInt64(d * 1000 + f))
                case 1: content = Array((0..<(size / 8 + 1)).map { "w\($0 % 97) " }.joined().utf8.prefix(size))
                default: content = [UInt8](repeating: UInt8(f), count: size)
                }
                s.items[path] = CramfsItem(kind: .file, mode: 0o644, content: content)
            }
        }
        s.items["d5/copy"] = s.items["d0/f1"]
        s.items["d4/copy"] = s.items["d1/s/f3"]
        s.hardLinks["d2/link"] = "d3/f4"
        s.hardLinks["d3/s/link"] = "d0/f2"
        return s
    }

    static func spec(_ name: String) -> CramfsSpec {
        switch name {
        case "standard": return CramfsSpec.standard()
        case "duplicates": return CramfsWriterTests.duplicatesSpec()
        case "boundaries": return boundarySpec()
        default: return manyFilesSpec()
        }
    }

    struct Run {
        var image: [UInt8]
        var result: ccramfs_write_result
        var reads: [UInt64]     // cookie, offset, len of every read callback
        var outputs: [UInt64]   // offset of every output callback
        var lengths: [Int]      // its length
    }

    static func record(_ built: BuiltTree, flags: UInt32, threads: UInt32) throws -> Run {
        built.source.log = []
        built.source.callsFromOtherThreads = 0
        defer { built.source.log = nil }
        let sink = ImageSink()
        let (image, result) = try built.write(flags: flags, threads: threads, sink: sink)
        #expect(built.source.callsFromOtherThreads == 0, "read callback off the calling thread")
        #expect(sink.callsFromOtherThreads == 0, "output callback off the calling thread")
        return Run(image: image, result: result, reads: built.source.log ?? [],
                   outputs: sink.offsets, lengths: sink.lengths)
    }

    @Test(arguments: ["standard", "duplicates", "boundaries", "many files"])
    func everyThreadCountWritesTheSameBytesAndCalls(_ name: String) throws {
        let spec = Self.spec(name)
        let built = try spec.build()
        var plain: [UInt32: [UInt8]] = [:]  // images without CCRAMFS_WRITE_SEQUENTIAL
        for flags in Self.flagSets {
            let ref = try Self.record(built, flags: flags, threads: 1)
            let base = flags & ~CCRAMFS_WRITE_SEQUENTIAL
            if let p = plain[base] {
                #expect(sameBytes(ref.image, p), "\(name), flags \(flags): sequential image differs")
            } else {
                plain[base] = ref.image
                expectSameTree(try readWithOurReader(ref.image), spec.expected, "\(name), flags \(flags)")
            }
            for threads in Self.threadCounts {
                let r = try Self.record(built, flags: flags, threads: threads)
                let what = "\(name), flags \(flags), \(threads) threads"
                #expect(sameBytes(r.image, ref.image), "\(what): image differs")
                #expect(r.reads == ref.reads, "\(what): read callback sequence differs")
                #expect(r.outputs == ref.outputs && r.lengths == ref.lengths,
                        "\(what): output callback sequence differs")
                #expect(r.result.crc == ref.result.crc && r.result.blocks == ref.result.blocks
                        && r.result.shared == ref.result.shared && r.result.input_bytes == ref.result.input_bytes
                        && r.result.image_size == ref.result.image_size
                        && r.result.metadata_size == ref.result.metadata_size, "\(what): result differs")
            }
        }
    }

    @Test func threadedImageMatchesFsckAndMkfsCramfs() throws {
        var spec = Self.boundarySpec()
        spec.items["dup/c"] = nil  // mkfs.cramfs would share it despite its other mode
        let built = try spec.build()
        let (image, _) = try built.write(threads: 3)
        let (dedup, _) = try built.write(flags: CCRAMFS_WRITE_DEDUPLICATE, threads: 3)
        // boundarySpec has equal content with equal attributes: mkfs.cramfs shares it like
        // CCRAMFS_WRITE_DEDUPLICATE does.
        try expectFsckAccepts(image, andMkfsCramfsGives: dedup, for: spec)
    }

    @Test func readFailuresStopEveryThreadCountWithTheSameMessage() throws {
        let built = try CramfsSpec.standard().build()
        _ = try built.write()
        let total = built.source.calls
        built.source.calls = 0
        for flags in [0, CCRAMFS_WRITE_SEQUENTIAL] {
            for failAt in [1, 2, 3, 9, 17, 100, total / 2, total - 1, total] {
                var messages: [UInt32: String] = [:]
                for threads: UInt32 in [1, 2, 4, 7] {
                    built.source.failAtCall = failAt
                    built.source.calls = 0
                    defer { built.source.failAtCall = 0 }
                    do {
                        _ = try built.write(flags: flags, threads: threads)
                        Issue.record("flags \(flags), read \(failAt) of \(total), \(threads) threads: no error")
                    } catch let f as CramfsFailure {
                        #expect(f.status == CCRAMFS_ERR_READ_CALLBACK, "\(f)")
                        #expect(f.message.contains("read callback failed with 55"), "\(f)")
                        messages[threads] = f.message
                    }
                    #expect(built.source.calls == failAt, "no read after the failing one")
                }
                #expect(Set(messages.values).count == 1, "\(messages)")
            }
        }
        // The tree still writes normally afterwards.
        #expect(sameBytes(try built.write(threads: 2).image, try built.write().image))
    }

    @Test func outputFailuresStopEveryThreadCountWithTheSameMessage() throws {
        let built = try CramfsSpec.standard().build()
        let countSink = ImageSink()
        _ = try built.write(sink: countSink)
        let total = countSink.offsets.count
        for flags in [0, CCRAMFS_WRITE_SEQUENTIAL] {
            for failAfter in [0, 1, 2, 10, 33, total / 2, total - 1] {
                var messages: [UInt32: String] = [:]
                for threads: UInt32 in [1, 2, 4, 7] {
                    let sink = ImageSink()
                    sink.failAfterCalls = failAfter
                    do {
                        _ = try built.write(flags: flags, threads: threads, sink: sink)
                        Issue.record("flags \(flags), output \(failAfter) of \(total), \(threads) threads: no error")
                    } catch let f as CramfsFailure {
                        #expect(f.status == CCRAMFS_ERR_OUTPUT_CALLBACK, "\(f)")
                        messages[threads] = f.message
                    }
                    #expect(sink.offsets.count == failAfter)
                }
                #expect(Set(messages.values).count == 1, "\(messages)")
            }
        }
    }

    @Test func contentChangingBetweenSequentialPassesIsDetectedWithThreads() throws {
        for threads: UInt32 in [2, 4, 7] {
            let built = try CramfsSpec.standard().build()
            _ = try built.write()
            let readsPerPass = built.source.reads
            built.source.reads = 0
            built.source.mutateCookie = built.source.contents.keys.sorted().first { built.source.contents[$0]!.count > 5000 }
            built.source.mutateAfterReads = readsPerPass
            #expect { try built.write(flags: CCRAMFS_WRITE_SEQUENTIAL, threads: threads) } throws: {
                ($0 as? CramfsFailure)?.status == CCRAMFS_ERR_INPUT_CHANGED
            }
            // Content stable again: the sequential image is the plain one.
            #expect(sameBytes(try built.write(flags: CCRAMFS_WRITE_SEQUENTIAL, threads: threads).image, try built.write().image))
        }
    }

    @Test func threadOptionLimitsAndTinyTrees() throws {
        let built = try CramfsSpec.standard().build()
        let plain = try built.write().image
        #expect(sameBytes(try built.write(threads: CCRAMFS_MAX_WRITE_THREADS).image, plain))
        #expect { try built.write(threads: CCRAMFS_MAX_WRITE_THREADS + 1) } throws: {
            guard let f = $0 as? CramfsFailure else { return false }
            return f.status == CCRAMFS_ERR_INVALID_ARGUMENT && f.message.contains("threads")
        }
        #expect { try built.write(threads: UInt32.max) } throws: {
            ($0 as? CramfsFailure)?.status == CCRAMFS_ERR_INVALID_ARGUMENT
        }
        // No data at all, one block, one symlink: fewer blocks than threads.
        var one = CramfsSpec()
        one.items["f"] = CramfsItem(kind: .file, mode: 0o644, content: Array("one block\n".utf8))
        var link = CramfsSpec()
        link.items["l"] = CramfsItem(kind: .symlink, mode: 0o777, target: "somewhere")
        link.items["e"] = CramfsItem(kind: .file, mode: 0o644)
        for spec in [CramfsSpec(), one, link] {
            let b = try spec.build()
            let ref = try b.write().image
            for threads: UInt32 in [2, 7, 64] {
                for flags in Self.flagSets {
                    #expect(sameBytes(try b.write(flags: flags, threads: threads).image, ref))
                }
            }
        }
    }

    // The 256 MiB data-offset limit with threads (the check runs on the retiring side, after
    // the reads ran ahead) is checked by tools/cramfs-asan-check: it needs 272 MiB of
    // incompressible data, too slow for this suite.
}
