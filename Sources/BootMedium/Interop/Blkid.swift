import CBlkid
import Foundation

/// The only place that talks to libblkid: what an image holds, by its signatures.
enum Blkid {
    /// What libblkid found: a filesystem `type` (`iso9660`, `vfat`, `cramfs`, ...) and/or a
    /// partition table type (`dos`, `gpt`), with the filesystem's label.
    struct Probe: Equatable, Sendable {
        var filesystem: String?
        var partitionTable: String?
        var label: String?
    }

    /// Probes the open image `fd` (known as `path`): libblkid reads through our descriptor and
    /// never opens a name itself (a name could be swapped for a FIFO between our check and its
    /// open).
    static func probe(fd: Int32, size: Int64, path: String) throws(BootMediumError) -> Probe {
        guard let probe = blkid_new_probe() else {
            throw BootMediumError(.invalidImage, "libblkid cannot create a probe", context: ["path": path])
        }
        defer { blkid_free_probe(probe) }
        guard blkid_probe_set_device(probe, fd, 0, size) == 0 else {
            throw BootMediumError(.invalidImage, "libblkid cannot read \(path)", context: ["path": path])
        }
        _ = blkid_probe_enable_superblocks(probe, 1)
        _ = blkid_probe_set_superblocks_flags(probe, Int32(BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL))
        _ = blkid_probe_enable_partitions(probe, 1)
        var result = Probe()
        // Probe one chain at a time so a hybrid (ISO with an MBR) shows both.
        while blkid_do_probe(probe) == 0 {
            if let value = lookup(probe, "TYPE"), result.filesystem == nil { result.filesystem = value }
            if let value = lookup(probe, "PTTYPE"), result.partitionTable == nil { result.partitionTable = value }
            if let value = lookup(probe, "LABEL"), result.label == nil { result.label = value }
        }
        return result
    }

    private static func lookup(_ probe: blkid_probe, _ name: String) -> String? {
        var data: UnsafePointer<CChar>?
        var length = 0
        guard blkid_probe_lookup_value(probe, name, &data, &length) == 0, let data else { return nil }
        return String(cString: data)
    }
}
