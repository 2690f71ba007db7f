import Foundation

/// The options of a request (docs/behaviour.md §1), parsed, before node tags are applied.
public struct MediumOptions: Equatable, Sendable {
    /// `cramfs`.
    public var cramfs = false
    /// `partition` (USB only).
    public var partition = false
    /// `serial` or `serial:SPEC`.
    public var serial: SerialConsole?
    /// `variant:NAME`.
    public var variant: String?
    /// `no-hangcheck`.
    public var noHangcheck = false
    /// `systemd-console`.
    public var systemdConsole = false
    /// `systemd-debug`.
    public var systemdDebug = false

    /// No option at all.
    public init() {}

    /// Parses the option strings; an unknown one is `invalid-option`.
    public init(parsing options: [String]) throws(BootMediumError) {
        for option in options {
            switch option {
            case "cramfs": cramfs = true
            case "partition": partition = true
            case "serial": serial = .default
            case "no-hangcheck": noHangcheck = true
            case "systemd-console": systemdConsole = true
            case "systemd-debug": systemdDebug = true
            default:
                if option.hasPrefix("serial:") {
                    serial = try SerialConsole(spec: String(option.dropFirst("serial:".count)))
                } else if option.hasPrefix("variant:") {
                    let name = String(option.dropFirst("variant:".count))
                    guard BootcdTree.isValidVariantName(name) else {
                        throw BootMediumError(
                            .invalidOption,
                            "Invalid variant name \(name.debugDescription): a plain directory name is expected",
                            context: ["option": option])
                    }
                    variant = name
                } else {
                    throw BootMediumError(
                        .invalidOption, "Unknown option \(option.debugDescription)",
                        context: ["option": option])
                }
            }
        }
    }

    /// The settings in force for `node`: its tags are defaults that the request's options
    /// override (docs/contract.md §2). `cramfs`, `no-hangcheck`, `systemd-console`, `systemd-debug`
    /// are on when the tag is present; `serial` is a spec (empty or `default`: the default);
    /// `kvariant` a variant name. A tag value that does not parse is an error like the option.
    public func applyingTags(of node: Node?) throws(BootMediumError) -> MediumOptions {
        guard let tags = node?.tags else { return self }
        var result = self
        if tags["cramfs"] != nil { result.cramfs = true }
        if tags["no-hangcheck"] != nil { result.noHangcheck = true }
        if tags["systemd-console"] != nil { result.systemdConsole = true }
        if tags["systemd-debug"] != nil { result.systemdDebug = true }
        if result.serial == nil, let spec = tags["serial"] {
            result.serial = try SerialConsole(spec: spec.trimmingCharacters(in: .whitespaces))
        }
        if result.variant == nil, let name = tags["kvariant"], !name.isEmpty {
            guard BootcdTree.isValidVariantName(name) else {
                throw BootMediumError(
                    .missingVariant,
                    "The node's kvariant tag \(name.debugDescription) is not a plain directory name",
                    context: ["variant": name])
            }
            result.variant = name
        }
        return result
    }
}
