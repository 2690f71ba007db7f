import Foundation

/// Time as a request sees it: `SOURCE_DATE_EPOCH` when set fixes every timestamp.
public struct BuildClock: Equatable, Sendable {
    /// `SOURCE_DATE_EPOCH`, when set.
    public let sourceDateEpoch: Int64?
    /// The time used for timestamps.
    public let now: Int64

    /// Reads `SOURCE_DATE_EPOCH` from `environment` (an invalid value is `invalid-configuration`).
    public init(environment: [String: String]) throws(BootMediumError) {
        if let text = environment["SOURCE_DATE_EPOCH"], !text.isEmpty {
            guard let value = Int64(text), value >= 0, value < 253_402_300_800 else {
                throw BootMediumError(
                    .invalidConfiguration, "SOURCE_DATE_EPOCH \(text.debugDescription) is not a valid time",
                    context: ["SOURCE_DATE_EPOCH": text])
            }
            self.init(sourceDateEpoch: value)
        } else {
            self.init(sourceDateEpoch: nil)
        }
    }

    /// A clock fixed at `sourceDateEpoch`, or the current time.
    public init(sourceDateEpoch: Int64?) {
        self.sourceDateEpoch = sourceDateEpoch
        self.now = sourceDateEpoch ?? Int64(Date().timeIntervalSince1970)
    }
}
