import Foundation

// The standard `withUnsafeBytes` and `withUnsafeMutableBytes` rethrow `any Error`: these keep
// the body's typed error (`throws(BootMediumError)`), so callers need no `Result` around them.

extension ContiguousBytes {
    /// `withUnsafeBytes`, throwing `body`'s own error type.
    func withBytes<R, Failure: Error>(_ body: (UnsafeRawBufferPointer) throws(Failure) -> R) throws(Failure) -> R {
        try withUnsafeBytes { buffer in Result { () throws(Failure) in try body(buffer) } }.get()
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeMutableBytes`, throwing `body`'s own error type.
    mutating func withMutableBytes<R, Failure: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> R)
        throws(Failure) -> R
    {
        try withUnsafeMutableBytes { buffer in Result { () throws(Failure) in try body(buffer) } }.get()
    }
}
