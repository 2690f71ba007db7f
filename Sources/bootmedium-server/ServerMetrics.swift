import BootMedium
import Metrics
import Prometheus
import Synchronization

/// The server's metrics (swift-metrics, exported by swift-prometheus at `GET /metrics`):
///
/// - `bootmedium_requests_total{method,action,outcome}`: XML-RPC calls and downloads, by
///   outcome (`ok`, an error code, `busy`);
/// - `bootmedium_request_duration_seconds{method,action}`: their durations (a histogram);
/// - `bootmedium_served_bytes_total{kind}`: body bytes served, `download` (media by URL) or
///   `inline` (images in XML-RPC answers);
/// - `bootmedium_template_cache_{hits,builds,evictions}_total`: the template cache's work;
/// - `bootmedium_media_by_url`, `bootmedium_media_by_url_bytes`: media served by URL now and
///   the bytes they keep; `bootmedium_work_{running,waiting}`: the work queue.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let cacheSeen = Mutex(TemplateCache.Counters())

    /// Makes the registry swift-metrics' backend (once per process).
    func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    func request(method: String, action: String, outcome: String, seconds: Double) {
        Counter(label: "bootmedium_requests_total", dimensions: [("method", method), ("action", action), ("outcome", outcome)])
            .increment()
        Metrics.Timer(label: "bootmedium_request_duration_seconds", dimensions: [("method", method), ("action", action)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func served(_ bytes: Int64, kind: String) {
        guard bytes > 0 else { return }
        Counter(label: "bootmedium_served_bytes_total", dimensions: [("kind", kind)]).increment(by: Int(bytes))
    }

    /// The metrics in Prometheus' text format, the gauges and the cache's counters brought up
    /// to date first.
    func exposition(cache: TemplateCache?, media: MediaStore, work: (running: Int, waiting: Int)) -> [UInt8] {
        if let cache {
            let now = cache.counts
            let before = cacheSeen.withLock { seen in
                defer { seen = now }
                return seen
            }
            Counter(label: "bootmedium_template_cache_hits_total").increment(by: now.hits - before.hits)
            Counter(label: "bootmedium_template_cache_builds_total").increment(by: now.builds - before.builds)
            Counter(label: "bootmedium_template_cache_evictions_total").increment(by: now.evictions - before.evictions)
        }
        let usage = media.usage
        Gauge(label: "bootmedium_media_by_url").record(usage.count)
        Gauge(label: "bootmedium_media_by_url_bytes").record(usage.bytes)
        Gauge(label: "bootmedium_work_running").record(work.running)
        Gauge(label: "bootmedium_work_waiting").record(work.waiting)
        return registry.emitToBuffer()
    }
}
