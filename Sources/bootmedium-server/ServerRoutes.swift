import BootMedium
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The server's routes (docs/server.md): `POST /PLCAPI/` (XML-RPC), `GET`/`HEAD
/// /media/<token>/<file name>` (media by URL), `GET /metrics`, `GET /healthz`.
struct ServerRoutes: Sendable {
    let api: PLCAPI
    let work: WorkQueue
    let metrics: ServerMetrics
    let logger: Logger
    let parser: XMLRPCParser
    /// Seconds a client told 503 should wait.
    let retryAfter = 5

    func install(on router: Router<BasicRequestContext>) {
        router.post("/PLCAPI/") { request, _ in await self.xmlrpc(request) }
        router.get("/media/:token/:name") { request, context in self.download(request, context) }
        router.head("/media/:token/:name") { request, context in self.download(request, context) }
        router.get("/download/:nodefamily/:name") { request, context in self.published(request, context) }
        router.head("/download/:nodefamily/:name") { request, context in self.published(request, context) }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            let text = metrics.exposition(cache: api.service.templates, media: api.media, work: await work.load)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("/healthz") { _, _ in await self.health() }
    }

    /// 200 when the node source answers (a lookup of a node that cannot exist), else 503.
    private func health() async -> Response {
        do throws(BootMediumError) {
            _ = try await api.service.planner.nodes.node(.id(-1))
            return Self.text(.ok, "ok\n")
        } catch {
            return Self.text(.serviceUnavailable, error.description + "\n")
        }
    }

    private static func text(_ status: HTTPResponse.Status, _ text: String, headers: HTTPFields = HTTPFields()) -> Response {
        var headers = headers
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private static func xml(_ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/xml; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// One XML-RPC call: parsed within bounds, run through the work queue, answered with a
    /// value or a fault; one log line and its metrics.
    private func xmlrpc(_ request: Request) async -> Response {
        let started = ContinuousClock.now
        var summary = CallSummary()
        var outcome = "ok"
        var bytes: Int64 = 0
        func finish(_ response: Response) -> Response {
            let seconds = Self.seconds(since: started)
            metrics.request(method: summary.method, action: summary.action, outcome: outcome, seconds: seconds)
            logger.info(
                "call",
                metadata: [
                    "method": .string(summary.method), "node": .string(summary.node), "action": .string(summary.action),
                    "outcome": .string(outcome), "duration_ms": .stringConvertible(Int(seconds * 1000)),
                    "bytes": .stringConvertible(bytes),
                ])
            return response
        }
        let limit = parser.limits.bytes
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            outcome = "too-large"
            return finish(Self.text(.contentTooLarge, "error[invalid-call]: The body has \(declared) bytes, more than the \(limit) allowed\n"))
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            outcome = "too-large"
            return finish(Self.text(.contentTooLarge, "error[invalid-call]: The body is larger than the \(limit) bytes allowed\n"))
        }
        let call: XMLRPCCall
        do throws(BootMediumError) {
            call = try parser.parse(Array(body.readableBytesView))
        } catch {
            outcome = error.code.rawValue
            let fault = PLCFault(code: PLCFault.invalidArgument, error)
            return finish(Self.xml(XMLRPCResponse.fault(code: fault.code, message: fault.text)))
        }
        summary.method = call.method
        let answer: PLCAnswer
        do {
            (answer, summary) = try await work.run { [api] () async throws -> (PLCAnswer, CallSummary) in
                var inner = CallSummary()
                do throws(PLCFault) {
                    return (try await api.handle(call, summary: &inner), inner)
                } catch {
                    throw FaultWithSummary(fault: error, summary: inner)
                }
            }
        } catch let failed as FaultWithSummary {
            summary = failed.summary
            outcome = failed.fault.error.code.rawValue
            return finish(Self.xml(XMLRPCResponse.fault(code: failed.fault.code, message: failed.fault.text)))
        } catch is WorkQueue.Full {
            outcome = "busy"
            var headers = HTTPFields()
            headers[.retryAfter] = String(retryAfter)
            return finish(Self.text(.serviceUnavailable, "error[server-busy]: Too many requests are waiting; retry later\n", headers: headers))
        } catch {
            outcome = "internal"
            return finish(Self.xml(XMLRPCResponse.fault(code: PLCFault.apiError, message: "Internal API error: \(error)")))
        }
        switch answer {
        case .value(let value):
            let text = XMLRPCResponse.success(value)
            bytes = Int64(text.utf8.count)
            return finish(Self.xml(text))
        case .base64Medium(let medium):
            bytes = (medium.size + 2) / 3 * 4
            metrics.served(bytes, kind: "inline")
            return finish(Self.base64Response(medium))
        }
    }

    /// An XML-RPC answer whose string is `medium` in base64, streamed: the medium is read and
    /// encoded piece by piece (a multiple of 3 bytes, so the pieces' encodings concatenate).
    private static func base64Response(_ medium: FixedMedium) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/xml; charset=utf-8"
        let head = Array(XMLRPCResponse.streamedStringHead.utf8)
        let tail = Array(XMLRPCResponse.streamedStringTail.utf8)
        let encoded = (medium.size + 2) / 3 * 4
        let length = Int64(head.count + tail.count) + encoded
        headers[.contentLength] = String(length)
        let body = ResponseBody(contentLength: Int(length)) { writer in
            try await writer.write(ByteBuffer(bytes: head))
            let piece = 3 * (MediumDownload.piece / 3 + 1)
            var offset: Int64 = 0
            while offset < medium.size {
                try Task.checkCancellation()
                let chunk = try medium.read(at: offset, count: piece)
                guard !chunk.isEmpty else { throw BootMediumError(.internal, "Internal error: a medium read short") }
                try await writer.write(ByteBuffer(bytes: Data(chunk).base64EncodedData()))
                offset += Int64(chunk.count)
            }
            try await writer.write(ByteBuffer(bytes: tail))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// `GET`/`HEAD /media/<token>/<file name>`: 404 for a token we did not make, one that
    /// expired, or another file name.
    private func download(_ request: Request, _ context: BasicRequestContext) -> Response {
        let started = ContinuousClock.now
        let method = request.method == .head ? "HEAD" : "GET"
        guard let token = context.parameters.get("token"), let name = context.parameters.get("name"),
            let medium = api.media.medium(token: token, fileName: name.removingPercentEncoding ?? name)
        else {
            metrics.request(method: method, action: "media", outcome: "not-found", seconds: Self.seconds(since: started))
            return Self.text(.notFound, "Not found\n")
        }
        let response = MediumDownload.response(request, medium: medium) { [metrics, logger] written in
            let seconds = Self.seconds(since: started)
            metrics.served(written, kind: "download")
            metrics.request(method: method, action: "media", outcome: "ok", seconds: seconds)
            logger.info(
                "download",
                metadata: [
                    "method": .string(method), "file": .string(medium.fileName), "range": .string(request.headers[.range] ?? "-"),
                    "duration_ms": .stringConvertible(Int(seconds * 1000)), "bytes": .stringConvertible(written),
                ])
        }
        if request.method == .head || response.status == .rangeNotSatisfiable {
            metrics.request(method: method, action: "media", outcome: response.status == .rangeNotSatisfiable ? "unsatisfiable" : "ok", seconds: Self.seconds(since: started))
        }
        return response
    }

    /// `GET`/`HEAD /download/<nodefamily>/<file name>`: a published generic image
    /// (`var/www/html/download-<nodefamily>/<file name>` under the root), served as media by URL
    /// are; 404 for anything else.
    private func published(_ request: Request, _ context: BasicRequestContext) -> Response {
        let started = ContinuousClock.now
        let method = request.method == .head ? "HEAD" : "GET"
        guard let family = context.parameters.get("nodefamily"), let name = context.parameters.get("name"),
            let medium = try? FixedMedium.published(root: api.service.planner.root, nodefamily: family, fileName: name)
        else {
            metrics.request(method: method, action: "published", outcome: "not-found", seconds: Self.seconds(since: started))
            return Self.text(.notFound, "Not found\n")
        }
        return MediumDownload.response(request, medium: medium) { [metrics] written in
            metrics.served(written, kind: "download")
            metrics.request(method: method, action: "published", outcome: "ok", seconds: Self.seconds(since: started))
        }
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// A fault thrown out of the work queue with what the call was.
private struct FaultWithSummary: Error {
    let fault: PLCFault
    let summary: CallSummary
}
