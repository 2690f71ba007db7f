import Foundation
import Testing

@testable import BootMedium

/// The hex spelling behind every SHA-256 in manifests and the tree-facts cache, and temp names.
struct DigestTests {
    /// FIPS 180-2's test vectors, spelled as `sha256sum` spells them.
    @Test func sha256OfTheFIPSVectors() {
        #expect(Digest.sha256(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func hexSpellsEveryByteWithTwoLowerCaseDigits() {
        #expect(Digest.hex([0x00, 0x01, 0x0f, 0x10, 0xa5, 0xf0, 0xff]) == "00010f10a5f0ff")
        #expect(Digest.hex([UInt8]()) == "")
        let all = (0...255).map { UInt8($0) }
        #expect(Digest.hex(all) == all.map { String(format: "%02x", $0) }.joined())
    }

    @Test func randomSuffixIsTwelveHexDigits() {
        for _ in 0..<200 {
            let suffix = Posix.randomSuffix()
            #expect(suffix.count == 12)
            #expect(suffix.allSatisfy { "0123456789abcdef".contains($0) })
        }
    }
}
