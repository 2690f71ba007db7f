/// `bootmedium verify`: whether an image is what bootmedium would build for a node now.
public enum ImageVerifier {
    /// Every difference between the image and what the request recorded in its manifest would
    /// give now (same action and options, the node's current record and tags, the current tree),
    /// one line each; empty when the image is current. The node key is not compared (every
    /// build renews it), `NODE_ID` is.
    public static func differences(image path: String, node: String?, planner: Planner) async throws(BootMediumError)
        -> [String]
    {
        let report = try ImageInspector.inspect(path: path, showSecrets: true)
        var out: [String] = []
        if report.manifest.status != .ok {
            out.append("manifest: \(report.manifest.status.rawValue)")
            out += report.manifest.problems.map { "manifest: \($0)" }
        }
        guard let manifest = report.manifest.manifest else {
            out.append("the image carries no bootmedium manifest: cannot tell how it was built")
            return out
        }
        let action = try BootAction(parsing: manifest.action)
        if action.isGeneric && node != nil {
            out.append("the image is \(manifest.action), not a node image")
        }
        let plan = try await planner.plan(
            BootMediumRequest(
                caller: .admin, node: action.isGeneric ? nil : node, action: manifest.action,
                destination: .inline, options: manifest.options ?? []))
        func compare(_ what: String, _ image: String?, _ now: String?) {
            let shownImage = (image ?? "").isEmpty ? "none" : image!
            let shownNow = (now ?? "").isEmpty ? "none" : now!
            if shownImage != shownNow { out.append("\(what): \(shownImage) in the image, \(shownNow) now") }
        }
        compare("image type", manifest.imageType, plan.imageType?.rawValue)
        compare("nodefamily", manifest.nodefamily, plan.nodefamily.name)
        compare("bootcd version", manifest.bootcdVersion, plan.tree?.version)
        compare("serial console", manifest.console, plan.console?.spec)
        compare("kernel arguments", manifest.kernelArguments.joined(separator: " "), plan.kernelCommandLine.arguments.joined(separator: " "))
        // GRUB (UEFI) must boot what SYSLINUX boots (whose arguments the lines above compare
        // with the plan), and on the plan's console.
        let syslinux = report.bootConfigs.first?.defaultEntry
        for grub in report.grubConfigs ?? [] {
            if let syslinux {
                compare("\(grub.path) arguments", grub.arguments.joined(separator: " "), syslinux.append.joined(separator: " "))
                compare("\(grub.path) initrds", grub.initrds.joined(separator: ","), syslinux.initrds.joined(separator: ","))
            }
            let console = grub.serial.map { "ttyS\($0.unit):\($0.speed.map(String.init) ?? "")" }
            compare("\(grub.path) serial console", console, plan.console.map { "\($0.tty):\($0.baud)" })
        }
        if let nodeConfig = plan.nodeConfig, let node = plan.node {
            compare("node", manifest.nodeID.map(String.init), String(node.nodeID))
            let expected = ParsedNodeConfig(text: try nodeConfig.render(), showSecrets: true).assignments
            guard let actual = report.nodeConfig?.assignments else {
                out.append("plnode.txt: missing from the image")
                return out
            }
            compare("plnode.txt NODE_ID", actual.first { $0.name == "NODE_ID" }?.value, String(node.nodeID))
            let renewal: Set<String> = ["NODE_ID", "NODE_KEY", "KEY_RENEWAL_DATE"]
            let have = actual.filter { !renewal.contains($0.name) }
            for (i, line) in expected.enumerated() {
                guard let found = have.first(where: { $0.name == line.name }) else {
                    out.append("plnode.txt: \(line.name) missing in the image (now \"\(line.value)\")")
                    continue
                }
                if found.value != line.value {
                    out.append("plnode.txt: \(line.name) is \"\(found.value)\" in the image, \"\(line.value)\" now")
                } else if i < have.count, have[i].name != line.name {
                    out.append("plnode.txt: \(line.name) is out of order")
                }
            }
            for line in have where !expected.contains(where: { $0.name == line.name }) {
                out.append("plnode.txt: \(line.name) is in the image but no longer in the node's config")
            }
        }
        return out
    }
}
