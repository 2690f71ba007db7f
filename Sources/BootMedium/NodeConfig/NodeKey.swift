#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Node authentication keys and their renewal.
public enum NodeKey {
    /// A new key: 32 bytes from the system CSPRNG (`SystemRandomNumberGenerator`, i.e.
    /// `getrandom(2)` on Linux), base64-encoded, every `=` removed (the boot manager cannot
    /// handle `=`).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = generator.next() }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }
}

/// What a renewed key adds at the top of plnode.txt.
public struct KeyRenewal: Equatable, Sendable {
    /// `NODE_ID`.
    public let nodeID: Int
    /// `NODE_KEY`.
    public let key: String
    /// When the key was renewed (seconds since the epoch, UTC).
    public let date: Int64

    /// Creates a renewal.
    public init(nodeID: Int, key: String, date: Int64) {
        self.nodeID = nodeID
        self.key = key
        self.date = date
    }

    /// `YYYY/MM/DD at HH:MM +0000`, in UTC.
    public var formattedDate: String {
        var time = time_t(date)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d/%02d/%02d at %02d:%02d +0000", Int(parts.tm_year) + 1900,
            Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min))
    }
}
