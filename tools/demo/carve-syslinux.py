#!/usr/bin/env python3
"""Carve the SYSLINUX FAT payload out of Debian's /usr/bin/syslinux (mtools installer).

Usage: carve-syslinux.py SYSLINUX_BINARY OUTDIR

Writes OUTDIR/ldlinux.bss (512 B boot sector template), OUTDIR/ldlinux.sys (the
unpatched core image, no ADV) and OUTDIR/ldlinux.c32 (the module that matches that
core). Blobs are found by content (docs/syslinux-install.md §1), never by
fixed offsets, and checked against the sha256s recorded there: any difference is a
hard error (the syslinux package changed; the installer rules must be re-verified).
"""
import hashlib
import os
import struct
import sys

EXPECTED = {
    "ldlinux.bss": (512, "94bb10108daeb9cc3f65141d8d1e87994f504c701e3936030e1663c01781f5a5"),
    "ldlinux.sys": (58368, "266813dd25bc548da86ac6552cb055e7e1d4a46c3727ed34f3d80cdcb4ecb3d8"),
    "ldlinux.c32": (119532, "087ab8d6fba4beb6ff0043b66c7199f31f2e4080e0ebd487798f9f5395c7794e"),
}
MAGIC = 0x3EB202FE


def die(msg):
    sys.stderr.write("carve-syslinux: error: %s\n" % msg)
    sys.exit(1)


def elf_size(data, off):
    """Length of the ELF file starting at data[off]: the end of its furthest header/section."""
    if data[off:off + 4] != b"\x7fELF":
        die("no ELF header at 0x%x" % off)
    ei_class = data[off + 4]
    if ei_class == 1:  # ELF32
        (e_phoff, e_shoff, _flags, _ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum) = \
            struct.unpack_from("<IIIHHHHH", data, off + 0x1C)
        ehsize = 52
    elif ei_class == 2:  # ELF64
        (e_phoff, e_shoff, _flags, _ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum) = \
            struct.unpack_from("<QQIHHHHH", data, off + 0x20)
        ehsize = 64
    else:
        die("unknown ELF class %d" % ei_class)
    end = max(ehsize, e_phoff + e_phnum * e_phentsize, e_shoff + e_shnum * e_shentsize)
    for i in range(e_shnum):
        sh = off + e_shoff + i * e_shentsize
        if ei_class == 1:
            (_n, sh_type, _f, _a, sh_offset, sh_size) = struct.unpack_from("<IIIIII", data, sh)
        else:
            (_n, sh_type, _f, _a, sh_offset, sh_size) = struct.unpack_from("<IIQQQQ", data, sh)
        if sh_type != 8:  # SHT_NOBITS occupies no file space
            end = max(end, sh_offset + sh_size)
    for i in range(e_phnum):
        ph = off + e_phoff + i * e_phentsize
        if ei_class == 1:
            (_t, p_offset, _v, _p, p_filesz) = struct.unpack_from("<IIIII", data, ph)
        else:
            (_t, _fl, p_offset, _v, _p, p_filesz) = struct.unpack_from("<IIQQQQ", data, ph)
        end = max(end, p_offset + p_filesz)
    return end


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    src, outdir = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()

    # 1. boot sector template: EB 58 90 "SYSLINUX", magic dword at +0x1F8, 55 AA at +0x1FE
    cands = []
    pos = data.find(b"\xEB\x58\x90SYSLINUX")
    while pos >= 0:
        blk = data[pos:pos + 512]
        if len(blk) == 512 and struct.unpack_from("<I", blk, 0x1F8)[0] == MAGIC \
                and blk[0x1FE:0x200] == b"\x55\xAA":
            cands.append(pos)
        pos = data.find(b"\xEB\x58\x90SYSLINUX", pos + 1)
    if len(cands) != 1:
        die("expected exactly one boot sector template in %s, found %d" % (src, len(cands)))
    bss_off = cands[0]
    bss = data[bss_off:bss_off + 512]

    # 2. ldlinux.sys: right after the template, up to the ELF header of ldlinux.c32
    sys_off = bss_off + 512
    if not data[sys_off:sys_off + 16].startswith(b"\r\nSYSLINUX "):
        die("ldlinux.sys banner not found after the template at 0x%x" % sys_off)
    # the core's own code compares against "\x7fELF", so take the first *real* ELF header:
    # ELFCLASS32/64, little endian, EV_CURRENT, at a 512-byte multiple (bin2c pads the core)
    c32_off = data.find(b"\x7fELF", sys_off)
    while c32_off >= 0 and not (data[c32_off + 4] in (1, 2) and data[c32_off + 5] == 1
                                and data[c32_off + 6] == 1 and (c32_off - sys_off) % 512 == 0):
        c32_off = data.find(b"\x7fELF", c32_off + 1)
    if c32_off < 0:
        die("ldlinux.c32 ELF header not found after ldlinux.sys")
    ldsys = data[sys_off:c32_off]
    if len(ldsys) % 512 != 0:
        die("ldlinux.sys length %d is not a multiple of 512" % len(ldsys))
    if struct.unpack_from("<I", ldsys, 0x18)[0] != MAGIC:
        die("ldlinux.sys patch area magic not at +0x18")

    # 3. ldlinux.c32: its own ELF size
    c32 = data[c32_off:c32_off + elf_size(data, c32_off)]

    os.makedirs(outdir, exist_ok=True)
    for name, blob in (("ldlinux.bss", bss), ("ldlinux.sys", ldsys), ("ldlinux.c32", c32)):
        size, sha = EXPECTED[name]
        got = hashlib.sha256(blob).hexdigest()
        if len(blob) != size or got != sha:
            die("%s carved from %s has %d bytes sha256 %s, expected %d bytes sha256 %s "
                "(docs/syslinux-install.md §1); the syslinux package changed: re-verify the installer rules"
                % (name, src, len(blob), got, size, sha))
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(blob)
        sys.stderr.write("carve-syslinux: %s %d bytes at 0x%x sha256 %s OK\n"
                         % (name, len(blob), data.find(blob), got))


if __name__ == "__main__":
    main()
