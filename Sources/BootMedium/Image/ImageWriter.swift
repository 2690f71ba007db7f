/// Where an image writer sends its bytes, in order.
public protocol ImageSink: AnyObject {
    /// Appends bytes.
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError)

    /// Appends up to `count` bytes of the open regular file `fd`, read from `offset`, without
    /// passing them through user memory (`copy_file_range`), when this sink can. Returns the bytes
    /// appended (0: the file ends at `offset`), or nil when it cannot copy from `fd` (the default),
    /// and the caller reads and writes instead (``FileCopy``).
    func copy(from fd: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int?

    /// Told, before the first byte, how many bytes the image will have: a file sink reserves
    /// them (``Posix/reserve(_:count:path:)``), so a full disk fails before any writing. Does
    /// nothing by default.
    func reserve(_ byteCount: Int64) throws(BootMediumError)
}

/// A sink that is a regular file: bytes can land anywhere in it, from several threads at once
/// (positioned calls only; the sequential ``ImageSink`` calls stay on one thread).
protocol RandomAccessSink: ImageSink {
    /// Like ``ImageSink/copy(from:offset:count:)``, to the sink's offset `at`.
    func copy(from fd: Int32, offset: Int64, count: Int, at: Int64) throws(BootMediumError) -> Int?
    /// Writes `bytes` at the sink's offset `at`.
    func write(_ bytes: UnsafeRawBufferPointer, at: Int64) throws(BootMediumError)
    /// Sets the sink's length (bytes past it are dropped, a gap up to it reads as zeros).
    func setLength(_ length: Int64) throws(BootMediumError)
    /// Makes the sink a clone of the whole regular file `fd` (its extents shared, nothing
    /// copied: XFS, btrfs); false where the file system cannot (the caller copies instead).
    func clone(from fd: Int32) throws(BootMediumError) -> Bool
}

extension RandomAccessSink {
    /// Writes `bytes` at `at`.
    func write(_ bytes: [UInt8], at: Int64) throws(BootMediumError) {
        try bytes.withBytes { (buffer) throws(BootMediumError) in try write(buffer, at: at) }
    }
}

/// What an image writer is given: the plan and the rendered node config.
public struct ImageInputs: Sendable {
    /// The validated plan, of an image action.
    public let plan: ImagePlan
    /// plnode.txt, for node actions.
    public let nodeConfigText: String?

    /// The inputs of the image action `plan`; a text action's plan is an internal error.
    public init(plan: BootPlan, nodeConfigText: String?) throws(BootMediumError) {
        guard let image = plan.image else { throw BootMediumError(.internal, "Internal error: an image writer given a text action") }
        self.plan = image
        self.nodeConfigText = nodeConfigText
    }
}

/// Writes one image type.
protocol ImageWriter: Sendable {
    /// Writes the whole image into `sink`, checking `cancellation` as it goes.
    func write(_ inputs: ImageInputs, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
}

/// Lays out a medium's files as one image type (ISO 9660, FAT superfloppy, MBR + FAT).
protocol MediumLayout: Sendable {
    /// The SYSLINUX config's name: `isolinux.cfg` or `syslinux.cfg`.
    var configName: String { get }
    /// Where the UEFI loader goes.
    var uefiPlacement: UEFIPlacement { get }
    /// The type's boot loader files among the medium's files.
    func loaderFiles(_ tree: BootcdTree) throws(BootMediumError) -> [MediumFile]
    /// The tree files the type's boot loader is made of (a template's key covers them).
    func treeInputs(_ tree: BootcdTree) throws(BootMediumError) -> [InputFile]
    /// Writes `files` as the image.
    func write(_ files: [MediumFile], plan: ImagePlan, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    /// Where each file of `names` lies in the image at `path` (one we wrote), when contiguous.
    func locate(_ names: [String], inImageAt path: String) throws(BootMediumError) -> [String: (offset: Int64, size: Int64)]
}

/// Writes a medium of one image type: a plain medium as its cached template with the request's
/// slots (``SplicedMedium``), built in full when a slot's content does not fit or without a
/// template cache; a cramfs medium in full (its root holds the node config).
struct MediumWriter: ImageWriter {
    let layout: any MediumLayout
    let templates: TemplateCache?

    func write(_ inputs: ImageInputs, to sink: any ImageSink, cancellation: CancellationFlag) throws(BootMediumError) {
        let plan = inputs.plan
        let extra = try layout.loaderFiles(plan.tree)
        if plan.type.isCramfs {
            let contents = try MediumContents.prepareCramfs(
                inputs, tree: plan.tree, configName: layout.configName, extra: extra, uefi: layout.uefiPlacement, cancellation: cancellation)
            // The contents hold the anonymous file behind cramfs.img: keep it open until written.
            try withExtendedLifetime(contents) { () throws(BootMediumError) in
                try layout.write(contents.files, plan: plan, to: sink, cancellation: cancellation)
            }
            return
        }
        let request = try slotContents(inputs, cancellation: cancellation)
        if let spliced = try splice(plan, request, extra: extra, cancellation: cancellation) {
            try spliced.write(to: sink, cancellation: cancellation)
            return
        }
        // Without a template, or a content too big for its slot: the whole medium, its slots
        // grown to fit.
        let slots = request.slots
        let files = try MediumContents.plainFiles(plan, tree: plan.tree, slots: slots, extra: extra, uefi: layout.uefiPlacement, cancellation: cancellation)
        let fixed = try fixedEntries(files, slots: slots, plan: plan, cancellation: cancellation)
        guard let filled = try MediumContents.fill(plan, slots: slots, contents: request.contents, fixed: fixed, growing: true) else {
            throw BootMediumError(.internal, "Internal error: grown slots do not fit their contents")
        }
        let final = files.map { file in filled.bytes[file.name].map { MediumFile(name: file.name, source: .bytes($0)) } ?? file }
        try layout.write(final, plan: plan, to: sink, cancellation: cancellation)
    }

    /// The plain medium of `inputs` as its template with the request's slots, or nil when it
    /// is to be built in full (a cramfs type, no template cache, or a content too big for its
    /// slot).
    func splice(_ inputs: ImageInputs, cancellation: CancellationFlag) throws(BootMediumError) -> SplicedMedium? {
        guard !inputs.plan.type.isCramfs else { return nil }
        return try splice(
            inputs.plan, try slotContents(inputs, cancellation: cancellation), extra: try layout.loaderFiles(inputs.plan.tree),
            cancellation: cancellation)
    }

    /// A plain medium's slots and the request's (unpadded) contents for them.
    private func slotContents(_ inputs: ImageInputs, cancellation: CancellationFlag)
        throws(BootMediumError) -> (slots: MediumSlots, contents: [String: [UInt8]])
    {
        let tree = inputs.plan.tree
        let slots = try MediumContents.slots(
            tree, configName: layout.configName, uefi: layout.uefiPlacement, capacities: templates?.capacities ?? .standard)
        return (slots, try MediumContents.slotContents(inputs, tree: tree, slots: slots, cancellation: cancellation))
    }

    private func splice(
        _ plan: ImagePlan, _ request: (slots: MediumSlots, contents: [String: [UInt8]]), extra: [MediumFile],
        cancellation: CancellationFlag
    ) throws(BootMediumError) -> SplicedMedium? {
        let slots = request.slots
        // A content too big for its slot is known before any template is looked for.
        guard let templates, request.contents.allSatisfy({ slots.fits($0.value, $0.key) }) else { return nil }
        let open = try template(plan, slots: slots, extra: extra, cache: templates, cancellation: cancellation)
        guard let filled = try MediumContents.fill(plan, slots: slots, contents: request.contents, fixed: open.record.fixedFiles) else {
            return nil  // the manifest outgrew its slot
        }
        return try SplicedMedium(open, slots: filled.bytes)
    }

    /// The template of `plan` from `cache`, built when missing: its files with the slots'
    /// placeholders, written by the layout, their slots found by reading the image back.
    private func template(
        _ plan: ImagePlan, slots: MediumSlots, extra: [MediumFile], cache: TemplateCache, cancellation: CancellationFlag
    ) throws(BootMediumError) -> TemplateCache.Open {
        let tree = plan.tree
        var inputs = [try MediumContents.kernel(tree), try MediumContents.bootcd(tree)] + (try layout.treeInputs(tree))
        if let uefi = try UEFIBoot.of(tree) { inputs += [uefi.shim, uefi.grub] + (uefi.mokManager.map { [$0] } ?? []) }
        let key = try MediumTemplate.key(plan, slots: slots, inputs: inputs, cancellation: cancellation)
        var fixed: [Manifest.File] = []
        return try cache.template(
            key: key, workDir: plan.root.workDir,
            build: { (sink: OutputFile) throws(BootMediumError) in
                let files = try MediumContents.plainFiles(
                    plan, tree: tree, slots: slots, extra: extra, uefi: layout.uefiPlacement, cancellation: cancellation)
                fixed = try fixedEntries(files, slots: slots, plan: plan, cancellation: cancellation)
                try layout.write(files, plan: plan, to: sink, cancellation: cancellation)
                // What was read is what the facts describe: a tree file changed meanwhile fails
                // the build, and no template is kept.
                try tree.checkUnchanged()
            },
            locate: { (path: String) throws(BootMediumError) in
                let found = try layout.locate(slots.names, inImageAt: path)
                var records: [MediumTemplate.Slot] = []
                for name in slots.names {
                    guard let extent = found[name], extent.size == Int64(slots.capacity(name)) else {
                        throw BootMediumError(.internal, "Internal error: slot \(name) is not one extent of \(slots.capacity(name)) bytes in the template")
                    }
                    records.append(MediumTemplate.Slot(name: name, offset: extent.offset, capacity: slots.capacity(name)))
                }
                return (records, fixed)
            })
    }

    /// The manifest entries of `files` outside the slots.
    private func fixedEntries(_ files: [MediumFile], slots: MediumSlots, plan: ImagePlan, cancellation: CancellationFlag)
        throws(BootMediumError) -> [Manifest.File]
    {
        let fixed = files.filter { !slots.names.contains($0.name) }
        return try MediumContents.manifestEntries(fixed, snapshot: try TreeSnapshot.take(plan, files: fixed, cancellation: cancellation))
    }
}

/// The writers of each image type.
enum ImageWriters {
    /// The writer of `type`, using `templates` for plain media when given.
    static func writer(for type: ImageType, templates: TemplateCache?) -> any ImageWriter {
        switch type {
        case .iso, .isoCramfs: MediumWriter(layout: ISOMediumLayout(), templates: templates)
        case .usb, .usbCramfs: MediumWriter(layout: FATMediumLayout(partitioned: false), templates: templates)
        case .usbPartition: MediumWriter(layout: FATMediumLayout(partitioned: true), templates: templates)
        }
    }
}
