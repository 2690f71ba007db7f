import BootMedium
import Crypto
import Foundation
import Synchronization

/// The media served by URL (`GetBootMediumURL`, docs/server.md): each a ``FixedMedium`` under
/// an unguessable token, until it expires. Bounded in count and in the bytes the media keep of
/// their own (``FixedMedium/ownBytes``: a spliced medium's slots, a medium built in full whole):
/// a new medium past either bound is `server-busy`, never a live one evicted (a BMC may be
/// half-way through a boot). Expired media go when a medium is added or looked up.
///
/// A token is `<id>.<mac>`: 16 random bytes, and an HMAC-SHA256 (the server's random key) of the
/// id, the expiry and the file name; a lookup finds the id and compares the MAC in constant
/// time, so neither a forged nor a guessed token reaches a medium, and timing tells nothing.
final class MediaStore: Sendable {
    struct Entry: Sendable {
        let medium: FixedMedium
        let expires: Int64
    }

    let lifetime: Int64
    let maximumCount: Int
    let maximumBytes: Int64
    /// The HMAC key, random per server run (its bytes: `SymmetricKey` is not `Sendable`).
    private let keyBytes: [UInt8] = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }
    private let entries = Mutex<[String: Entry]>([:])
    private let now: @Sendable () -> Int64

    init(lifetime: Int64, maximumCount: Int, maximumBytes: Int64, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.lifetime = lifetime
        self.maximumCount = maximumCount
        self.maximumBytes = maximumBytes
        self.now = now
    }

    /// The media being served and the bytes they keep.
    var usage: (count: Int, bytes: Int64) {
        entries.withLock { entries in (entries.count, entries.values.reduce(0) { $0 + $1.medium.ownBytes }) }
    }

    /// Serves `medium` under a new token; returns the token and when it expires.
    func add(_ medium: FixedMedium) throws(BootMediumError) -> (token: String, expires: Int64) {
        let time = now()
        let expires = time + lifetime
        var id = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for i in id.indices { id[i] = generator.next() }
        let idText = Self.base64url(id)
        let mac = self.mac(id: idText, expires: expires, fileName: medium.fileName)
        let added: Bool = entries.withLock { entries in
            entries = entries.filter { $0.value.expires > time }
            let bytes = entries.values.reduce(0) { $0 + $1.medium.ownBytes }
            guard entries.count < maximumCount, bytes + medium.ownBytes <= maximumBytes else { return false }
            entries[idText] = Entry(medium: medium, expires: expires)
            return true
        }
        guard added else {
            throw BootMediumError(
                .serverBusy,
                "Too many media are served by URL (at most \(maximumCount), \(maximumBytes) bytes of their own); retry when some expired")
        }
        return (idText + "." + Self.base64url(mac), expires)
    }

    /// The medium of `token`, when the token is one we made, for `fileName`, and not expired.
    func medium(token: String, fileName: String) -> FixedMedium? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count == 22, parts[1].utf8.count == 43,
            let given = Self.decodeBase64url(String(parts[1]))
        else { return nil }
        let id = String(parts[0])
        let time = now()
        guard let entry = entries.withLock({ entries -> Entry? in
            guard let entry = entries[id] else { return nil }
            if entry.expires <= time {
                entries[id] = nil
                return nil
            }
            return entry
        }) else { return nil }
        // swift-crypto compares the codes in constant time.
        guard HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Self.macInput(id, entry.expires, fileName), using: key),
            entry.medium.fileName == fileName
        else { return nil }
        return entry.medium
    }

    /// Forgets every medium (shutdown).
    func removeAll() { entries.withLock { $0.removeAll() } }

    private func mac(id: String, expires: Int64, fileName: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Self.macInput(id, expires, fileName), using: key))
    }

    private static func macInput(_ id: String, _ expires: Int64, _ fileName: String) -> Data {
        Data("\(id)\n\(expires)\n\(fileName)".utf8)
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64url(_ text: String) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }
}
