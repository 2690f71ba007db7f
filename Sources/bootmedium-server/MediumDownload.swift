import BootMedium
import Foundation
import HTTPTypes
import Hummingbird

/// A `GET` or `HEAD` of a medium served by URL: `Content-Length`, a strong `ETag` (the medium's
/// SHA-256), `Last-Modified` (when it was made), `Accept-Ranges: bytes`, one `Range` answered
/// 206 (or 416 past the end), `If-Range` honoured; the body streamed in pieces read from the
/// medium, never the whole medium in memory (RFC 9110 §14, §13.1.5).
enum MediumDownload {
    /// The bytes read from the medium per piece of a response body.
    static let piece = 256 << 10
    private static let allocator = ByteBufferAllocator()

    /// What a `Range` header asks of a representation of `size` bytes.
    enum RangeAnswer: Equatable {
        /// The whole representation (no Range, a Range we ignore, or an `If-Range` that does
        /// not match).
        case whole
        /// These bytes, 206.
        case part(ClosedRange<Int64>)
        /// None of the representation's bytes, 416.
        case unsatisfiable
    }

    /// Reads a `Range` header (`bytes=first-last`, `bytes=first-`, `bytes=-suffix`). A header
    /// with several ranges, another unit or bad syntax is ignored (the whole, as RFC 9110
    /// allows); one that lies wholly past the end is unsatisfiable.
    static func range(_ header: String?, size: Int64) -> RangeAnswer {
        guard let header else { return .whole }
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.lowercased().hasPrefix("bytes="), !text.contains(",") else { return .whole }
        let spec = text.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let halves = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count == 2 else { return .whole }
        let digits = { (s: Substring) in !s.isEmpty && s.count <= 18 && s.allSatisfy { $0.isASCII && $0.isNumber } }
        if halves[0].isEmpty {
            guard digits(halves[1]), let suffix = Int64(halves[1]) else { return .whole }
            if suffix == 0 || size == 0 { return .unsatisfiable }
            return .part(max(0, size - suffix)...(size - 1))
        }
        guard digits(halves[0]), let first = Int64(halves[0]) else { return .whole }
        var last = size - 1
        if !halves[1].isEmpty {
            guard digits(halves[1]), let given = Int64(halves[1]), given >= first else { return .whole }
            last = min(given, size - 1)
        }
        if first >= size { return .unsatisfiable }
        return .part(first...last)
    }

    /// An HTTP date (IMF-fixdate) of `seconds` since the epoch.
    static func httpDate(_ seconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// The response to `request` for `medium`; `served` is told how many body bytes were
    /// written once the body ends (or fails).
    static func response(
        _ request: Request, medium: FixedMedium, served: @escaping @Sendable (Int64) -> Void
    ) -> Response {
        let etag = "\"\(medium.sha256)\""
        let modified = httpDate(medium.made)
        var headers = HTTPFields()
        headers[.eTag] = etag
        headers[.lastModified] = modified
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = "attachment; filename=\"\(medium.fileName)\""
        var answer = range(request.headers[.range], size: medium.size)
        if answer != .whole, let ifRange = request.headers[.ifRange], ifRange != etag, ifRange != modified {
            answer = .whole  // the client's copy is another version: send this one whole
        }
        let status: HTTPResponse.Status
        let bytes: ClosedRange<Int64>?
        switch answer {
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(medium.size)"
            headers[.contentLength] = "0"
            return Response(status: .rangeNotSatisfiable, headers: headers, body: .init())
        case .whole:
            status = .ok
            bytes = medium.size > 0 ? 0...(medium.size - 1) : nil
        case .part(let part):
            status = .partialContent
            bytes = part
            headers[.contentRange] = "bytes \(part.lowerBound)-\(part.upperBound)/\(medium.size)"
        }
        let length = bytes.map { $0.upperBound - $0.lowerBound + 1 } ?? 0
        headers[.contentLength] = String(length)
        if request.method == .head {
            return Response(status: status, headers: headers, body: .init())
        }
        let body = ResponseBody(contentLength: Int(length)) { writer in
            var written: Int64 = 0
            defer { served(written) }
            if let bytes {
                var offset = bytes.lowerBound
                while offset <= bytes.upperBound {
                    try Task.checkCancellation()
                    let count = Int(min(Int64(piece), bytes.upperBound - offset + 1))
                    var chunk = Self.allocator.buffer(capacity: count)
                    let read = try chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { space in
                        try medium.read(into: UnsafeMutableRawBufferPointer(rebasing: space[..<count]), at: offset)
                    }
                    guard read == count else { throw BootMediumError(.internal, "Internal error: a medium read short") }
                    try await writer.write(chunk)
                    offset += Int64(count)
                    written += Int64(count)
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }
}
