import CCrypt
import Foundation

/// The only place that calls libcrypt.
enum Crypt {
    /// The crypt(3) salt alphabet.
    static let saltAlphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// A SHA-512-crypt (`$6$`) hash of `password` with a 16-character salt made from
    /// `saltBytes` (at least 16 bytes).
    ///
    /// `$6$` is chosen because every libc a bootcd may carry accepts it (glibc since 2.7,
    /// busybox's own crypt, musl), unlike yescrypt `$y$` (libxcrypt only) and unlike the
    /// original's MD5-crypt `$1$`, which is long broken.
    static func sha512Crypt(_ password: String, saltBytes: [UInt8]) throws(BootMediumError) -> String {
        precondition(saltBytes.count >= 16)
        let salt = String(saltBytes.prefix(16).map { saltAlphabet[Int($0) % saltAlphabet.count] })
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, "$6$\(salt)$", data) else {
            throw BootMediumError(.imageBuildFailed, "crypt_r failed: \(String(cString: strerror(errno)))")
        }
        let hash = String(cString: result)
        guard hash.hasPrefix("$6$") else {
            throw BootMediumError(.imageBuildFailed, "crypt_r did not produce a SHA-512 hash")
        }
        return hash
    }

    /// crypt(3) of `password` with `setting` (a stored hash: its method and salt), or nil when
    /// libcrypt refuses the setting (an unknown method, a malformed hash). Never the
    /// "failure token" some libcrypts return instead of NULL: that starts with `*`.
    static func hash(_ password: String, setting: String) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data) else { return nil }
        let hash = String(cString: result)
        return hash.hasPrefix("*") ? nil : hash
    }

    /// Whether `a` and `b` are equal, in time that depends on their lengths only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
