/*
 * CCramfs reader for untrusted images.
 *
 * Every access to the image goes through cc_rd(), which refuses anything outside
 * [0, limit) (limit = superblock size for version-2 images, else the image length).
 * Allocations: the reader (~30 KiB + zlib's 7 KiB state and 32 KiB window), and for
 * ccramfs_walk() a bitmap of limit/32 bytes, a stack of CCRAMFS_MAX_DEPTH frames (~150 KiB) and,
 * with VERIFY_DATA, a hash table of the distinct data regions seen (8 bytes per slot, at most
 * 2 * CCRAMFS_MAX_WALK_ENTRIES slots: <= 32 MiB, and only for images holding that many inodes).
 */
#include "ccramfs_internal.h"

#include <stdlib.h>
#include <zlib.h>

struct ccramfs_reader {
    const uint8_t *mem;
    ccramfs_pread_fn pread;
    void *pctx;
    uint64_t phys_len;
    uint64_t limit;
    uint64_t start;
    uint32_t flags;
    ccramfs_info info;
    uint8_t root_raw[CRAMFS_INODE_SIZE];

    z_stream zs;
    int zs_ok;
    uint8_t cbuf[CRAMFS_MAX_COMPRESSED_BLOCK];
    uint8_t dbuf[CCRAMFS_BLOCK_SIZE];
    int cache_valid;
    uint32_t cache_off, cache_size, cache_block, cache_len;

    char err[512];
};

#define CC_FAIL(r, code, ...)                                                                      \
    do {                                                                                           \
        cc_msg((r)->err, sizeof (r)->err, __VA_ARGS__);                                            \
        return (code);                                                                             \
    } while (0)

static ccramfs_status cc_rd(ccramfs_reader *r, uint64_t off, void *buf, size_t len,
                            const char *what) {
    if (off > r->limit || len > r->limit - off)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT,
                "%s at offset %llu (%zu bytes) lies outside the %llu-byte filesystem", what,
                (unsigned long long)off, len, (unsigned long long)r->limit);
    if (len == 0) return CCRAMFS_OK;
    if (r->mem) {
        memcpy(buf, r->mem + off, len);
        return CCRAMFS_OK;
    }
    int rc = r->pread(r->pctx, off, buf, len);
    if (rc != 0)
        CC_FAIL(r, CCRAMFS_ERR_IO, "image read callback failed with %d at offset %llu (%zu bytes)",
                rc, (unsigned long long)off, len);
    return CCRAMFS_OK;
}

const char *ccramfs_reader_error(const ccramfs_reader *r) { return r ? r->err : "no reader"; }

void ccramfs_close(ccramfs_reader *r) {
    if (!r) return;
    if (r->zs_ok) inflateEnd(&r->zs);
    free(r);
}

static void cc_decode_raw(const uint8_t *raw, uint64_t handle, ccramfs_node *out) {
    uint32_t w0 = cc_get32(raw), w1 = cc_get32(raw + 4), w2 = cc_get32(raw + 8);
    memset(out, 0, sizeof *out);
    out->handle = handle;
    out->mode = w0 & 0xFFFFu;
    out->uid = w0 >> 16;
    out->size = w1 & 0xFFFFFFu;
    out->gid = w1 >> 24;
    out->offset = (w2 >> 6) << 2;
    uint32_t ty = cc_type(out->mode);
    if (ty == CCRAMFS_S_IFCHR || ty == CCRAMFS_S_IFBLK) {
        out->dev_major = (out->size >> 8) & 0xFFu;
        out->dev_minor = out->size & 0xFFu;
    }
}

static ccramfs_status cc_open_common(ccramfs_reader *r, uint32_t flags) {
    uint8_t sb[CRAMFS_SUPER_SIZE];
    ccramfs_status st;
    r->flags = flags;
    r->limit = r->phys_len;
    if (r->phys_len < CRAMFS_SUPER_SIZE)
        CC_FAIL(r, CCRAMFS_ERR_TRUNCATED, "image is %llu bytes; a cramfs superblock needs %u",
                (unsigned long long)r->phys_len, CRAMFS_SUPER_SIZE);
    if ((st = cc_rd(r, 0, sb, sizeof sb, "superblock"))) return st;
    uint32_t magic = cc_get32(sb);
    r->start = 0;
    if (magic != CRAMFS_MAGIC) {
        if (magic == CRAMFS_MAGIC_SWAPPED)
            CC_FAIL(r, CCRAMFS_ERR_WRONG_ENDIANNESS, "big-endian cramfs images are not supported");
        if (r->phys_len >= CRAMFS_PAD_SIZE + CRAMFS_SUPER_SIZE) {
            if ((st = cc_rd(r, CRAMFS_PAD_SIZE, sb, sizeof sb, "superblock"))) return st;
            magic = cc_get32(sb);
            if (magic == CRAMFS_MAGIC_SWAPPED)
                CC_FAIL(r, CCRAMFS_ERR_WRONG_ENDIANNESS,
                        "big-endian cramfs images are not supported");
            r->start = CRAMFS_PAD_SIZE;
        }
        if (magic != CRAMFS_MAGIC)
            CC_FAIL(r, CCRAMFS_ERR_BAD_MAGIC, "no cramfs magic at offset 0 or 512");
    }
    ccramfs_info *in = &r->info;
    memset(in, 0, sizeof *in);
    in->start = r->start;
    in->flags = cc_get32(sb + 8);
    in->future = cc_get32(sb + 12);
    in->signature_ok = memcmp(sb + 16, CRAMFS_SIGNATURE, 16) == 0;
    in->crc_stored = cc_get32(sb + 32);
    in->edition = cc_get32(sb + 36);
    in->blocks = cc_get32(sb + 40);
    in->files = cc_get32(sb + 44);
    memcpy(in->name, sb + 48, 16);
    in->name[16] = '\0';
    memcpy(r->root_raw, sb + CRAMFS_ROOT_INODE_OFFSET, CRAMFS_INODE_SIZE);

    if (in->flags & ~CRAMFS_SUPPORTED_FLAGS)
        CC_FAIL(r, CCRAMFS_ERR_UNSUPPORTED, "unsupported feature flags 0x%x",
                in->flags & ~CRAMFS_SUPPORTED_FLAGS);
    in->fsid_version_2 = (in->flags & CRAMFS_FLAG_FSID_VERSION_2) != 0;
    if (in->fsid_version_2) {
        uint32_t size = cc_get32(sb + 4);
        in->size = size;
        if (size < r->start + CRAMFS_SUPER_SIZE)
            CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "superblock size %u is smaller than the superblock",
                    size);
        if (size > r->phys_len)
            CC_FAIL(r, CCRAMFS_ERR_TRUNCATED,
                    "superblock says %u bytes but the image has only %llu", size,
                    (unsigned long long)r->phys_len);
        if (in->files == 0) CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "superblock file count is zero");
        r->limit = size;
    }

    ccramfs_node root;
    cc_decode_raw(r->root_raw, r->start + CRAMFS_ROOT_INODE_OFFSET, &root);
    if (cc_type(root.mode) != CCRAMFS_S_IFDIR)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "root inode is not a directory (mode 0%o)", root.mode);
    if (!(in->flags & CRAMFS_FLAG_SHIFTED_ROOT_OFFSET) && root.offset != 0 &&
        root.offset != CRAMFS_SUPER_SIZE && root.offset != CRAMFS_PAD_SIZE + CRAMFS_SUPER_SIZE)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "bad root offset %u", root.offset);

    if (in->fsid_version_2) {
        uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
        uint64_t a = r->start, end = r->limit, crc_at = r->start + CRAMFS_CRC_OFFSET;
        static const uint8_t zero4[4];
        uint8_t *chunk = r->mem ? NULL : malloc(65536);
        if (!r->mem && !chunk) CC_FAIL(r, CCRAMFS_ERR_NO_MEMORY, "out of memory");
        while (a < end) {
            uint64_t stop = a < crc_at ? crc_at : end;
            if (a == crc_at) {
                crc = (uint32_t)crc32(crc, zero4, 4);
                a += 4;
                continue;
            }
            uint64_t n = stop - a;
            if (n > 65536) n = 65536;
            if (r->mem) {
                crc = (uint32_t)crc32(crc, r->mem + a, (uInt)n);
            } else {
                if ((st = cc_rd(r, a, chunk, (size_t)n, "image"))) {
                    free(chunk);
                    return st;
                }
                crc = (uint32_t)crc32(crc, chunk, (uInt)n);
            }
            a += n;
        }
        free(chunk);
        in->crc_computed = crc;
        in->crc_ok = crc == in->crc_stored;
        if (!in->crc_ok && !(flags & CCRAMFS_OPEN_IGNORE_CRC))
            CC_FAIL(r, CCRAMFS_ERR_BAD_CRC, "CRC mismatch: superblock says 0x%08x, image is 0x%08x",
                    in->crc_stored, crc);
    }
    if (inflateInit(&r->zs) != Z_OK) CC_FAIL(r, CCRAMFS_ERR_NO_MEMORY, "zlib inflateInit failed");
    r->zs_ok = 1;
    return CCRAMFS_OK;
}

static ccramfs_status cc_open_finish(ccramfs_reader *r, uint32_t flags, ccramfs_reader **out,
                                     char *err, size_t errlen) {
    ccramfs_status st = cc_open_common(r, flags);
    if (st) {
        cc_msg(err, errlen, "%s", r->err);
        ccramfs_close(r);
        return st;
    }
    *out = r;
    return CCRAMFS_OK;
}

/* The common start of both open functions: check the arguments, allocate the reader. */
static ccramfs_status cc_reader_new(int arguments_ok, ccramfs_reader **out, ccramfs_reader **r,
                                    char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out || !arguments_ok) {
        cc_msg(err, errlen, "invalid arguments");
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    *r = calloc(1, sizeof **r);
    if (!*r) {
        cc_msg(err, errlen, "out of memory");
        return CCRAMFS_ERR_NO_MEMORY;
    }
    return CCRAMFS_OK;
}

ccramfs_status ccramfs_open_memory(const void *image, size_t len, uint32_t flags,
                                   ccramfs_reader **out, char *err, size_t errlen) {
    ccramfs_reader *r = NULL;
    ccramfs_status st = cc_reader_new(image || !len, out, &r, err, errlen);
    if (st) return st;
    static const uint8_t empty[1];
    r->mem = image ? image : empty;
    r->phys_len = len;
    return cc_open_finish(r, flags, out, err, errlen);
}

ccramfs_status ccramfs_open_callback(uint64_t image_len, ccramfs_pread_fn read_image, void *ctx,
                                     uint32_t flags, ccramfs_reader **out, char *err,
                                     size_t errlen) {
    ccramfs_reader *r = NULL;
    ccramfs_status st = cc_reader_new(read_image != NULL, out, &r, err, errlen);
    if (st) return st;
    r->pread = read_image;
    r->pctx = ctx;
    r->phys_len = image_len;
    return cc_open_finish(r, flags, out, err, errlen);
}

ccramfs_status ccramfs_get_info(const ccramfs_reader *r, ccramfs_info *out) {
    if (!r || !out) return CCRAMFS_ERR_INVALID_ARGUMENT;
    *out = r->info;
    return CCRAMFS_OK;
}

ccramfs_status ccramfs_root(ccramfs_reader *r, ccramfs_node *out) {
    if (!r || !out) return CCRAMFS_ERR_INVALID_ARGUMENT;
    r->err[0] = '\0';
    cc_decode_raw(r->root_raw, r->start + CRAMFS_ROOT_INODE_OFFSET, out);
    return CCRAMFS_OK;
}

/* Checks a directory node's entry area; *end gets its end offset. */
static ccramfs_status cc_dir_area(ccramfs_reader *r, const ccramfs_node *dir, uint64_t *end) {
    if (cc_type(dir->mode) != CCRAMFS_S_IFDIR)
        CC_FAIL(r, CCRAMFS_ERR_WRONG_TYPE, "'%s' is not a directory", dir->name);
    *end = (uint64_t)dir->offset + dir->size;
    if (dir->size == 0) return CCRAMFS_OK;
    if (dir->offset == 0)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "directory '%s' has %u bytes of entries at offset zero",
                dir->name, dir->size);
    if (dir->offset < r->start + CRAMFS_SUPER_SIZE)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "directory '%s' entries at %u overlap the superblock",
                dir->name, dir->offset);
    if (*end > r->limit)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT,
                "directory '%s' entries [%u, %llu) extend past the %llu-byte filesystem",
                dir->name, dir->offset, (unsigned long long)*end, (unsigned long long)r->limit);
    return CCRAMFS_OK;
}

ccramfs_status ccramfs_readdir(ccramfs_reader *r, const ccramfs_node *dir, uint32_t *cursor,
                               ccramfs_node *out) {
    if (!r || !dir || !cursor || !out) return CCRAMFS_ERR_INVALID_ARGUMENT;
    r->err[0] = '\0';
    ccramfs_status st;
    uint64_t end;
    if ((st = cc_dir_area(r, dir, &end))) return st;
    if (*cursor >= dir->size) return CCRAMFS_DONE;
    if (*cursor & 3u) CC_FAIL(r, CCRAMFS_ERR_INVALID_ARGUMENT, "misaligned directory cursor");
    uint64_t pos = (uint64_t)dir->offset + *cursor;
    if (pos + CRAMFS_INODE_SIZE > end)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "directory '%s': truncated entry at offset %llu",
                dir->name, (unsigned long long)pos);
    uint8_t raw[CRAMFS_INODE_SIZE];
    if ((st = cc_rd(r, pos, raw, sizeof raw, "directory entry"))) return st;
    cc_decode_raw(raw, pos, out);
    uint32_t nl = (cc_get32(raw + 8) & 0x3Fu) * 4u;
    if (nl == 0)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "directory '%s': entry at offset %llu has an empty name",
                dir->name, (unsigned long long)pos);
    if (pos + CRAMFS_INODE_SIZE + nl > end)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT,
                "directory '%s': name of the entry at offset %llu runs past the directory",
                dir->name, (unsigned long long)pos);
    if ((st = cc_rd(r, pos + CRAMFS_INODE_SIZE, out->name, nl, "file name"))) return st;
    uint32_t len = nl;
    while (len > 0 && out->name[len - 1] == '\0') len--;
    if (nl - len > 3 || !cc_name_ok(out->name, len)) {
        out->name[0] = '\0';
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "directory '%s': invalid file name at offset %llu",
                dir->name, (unsigned long long)pos);
    }
    out->name[len] = '\0';
    out->name_len = len;
    *cursor += CRAMFS_INODE_SIZE + nl;
    return CCRAMFS_OK;
}

ccramfs_status ccramfs_lookup(ccramfs_reader *r, const char *path, size_t path_len,
                              ccramfs_node *out) {
    if (!r || !out || (!path && path_len)) return CCRAMFS_ERR_INVALID_ARGUMENT;
    ccramfs_node cur, ent;
    ccramfs_status st = ccramfs_root(r, &cur);
    if (st) return st;
    size_t i = 0;
    while (i < path_len) {
        while (i < path_len && path[i] == '/') i++;
        if (i == path_len) break;
        size_t j = i;
        while (j < path_len && path[j] != '/') j++;
        const char *comp = path + i;
        size_t clen = j - i;
        if (!cc_name_ok(comp, clen))
            CC_FAIL(r, CCRAMFS_ERR_INVALID_ARGUMENT, "invalid path component '%.*s'",
                    (int)(clen > 252 ? 252 : clen), comp);
        if (cc_type(cur.mode) != CCRAMFS_S_IFDIR)
            CC_FAIL(r, CCRAMFS_ERR_NOT_FOUND, "'%.*s': '%s' is not a directory",
                    (int)(path_len > 1024 ? 1024 : path_len), path, cur.name);
        uint32_t cursor = 0;
        for (;;) {
            st = ccramfs_readdir(r, &cur, &cursor, &ent);
            if (st == CCRAMFS_DONE)
                CC_FAIL(r, CCRAMFS_ERR_NOT_FOUND, "'%.*s' not found",
                        (int)(path_len > 1024 ? 1024 : path_len), path);
            if (st) return st;
            if (ent.name_len == clen && memcmp(ent.name, comp, clen) == 0) break;
        }
        cur = ent;
        i = j;
    }
    *out = cur;
    return CCRAMFS_OK;
}

/* Decodes block `b` of a file/symlink node into r->dbuf; *len = its length. */
static ccramfs_status cc_block(ccramfs_reader *r, const ccramfs_node *f, uint32_t b,
                               uint32_t *len) {
    if (r->cache_valid && r->cache_off == f->offset && r->cache_size == f->size &&
        r->cache_block == b) {
        *len = r->cache_len;
        return CCRAMFS_OK;
    }
    r->cache_valid = 0;
    ccramfs_status st;
    uint32_t size = f->size;
    uint32_t nb = (size + CCRAMFS_BLOCK_SIZE - 1) / CCRAMFS_BLOCK_SIZE;
    if (b >= nb) CC_FAIL(r, CCRAMFS_ERR_INVALID_ARGUMENT, "block %u past the end", b);
    if (f->offset == 0)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "'%s' has %u bytes of data at offset zero", f->name, size);
    if (f->offset < r->start + CRAMFS_SUPER_SIZE)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "'%s' data at %u overlaps the superblock", f->name,
                f->offset);
    uint64_t table = f->offset, first = table + 4ull * nb;
    if (first > r->limit)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT,
                "'%s': block pointer table [%llu, %llu) extends past the %llu-byte filesystem",
                f->name, (unsigned long long)table, (unsigned long long)first,
                (unsigned long long)r->limit);
    uint8_t p[8];
    uint64_t start, end;
    if (b == 0) {
        if ((st = cc_rd(r, table, p + 4, 4, "block pointer"))) return st;
        start = first;
    } else {
        if ((st = cc_rd(r, table + 4ull * (b - 1), p, 8, "block pointer"))) return st;
        start = cc_get32(p);
    }
    end = cc_get32(p + 4);
    uint32_t expect = b + 1 < nb ? CCRAMFS_BLOCK_SIZE : size - b * CCRAMFS_BLOCK_SIZE;
    if (start < first || end < start)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "'%s': block %u pointers are inconsistent (%llu..%llu)",
                f->name, b, (unsigned long long)start, (unsigned long long)end);
    if (end > r->limit)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "'%s': block %u ends at %llu, past the %llu-byte filesystem",
                f->name, b, (unsigned long long)end, (unsigned long long)r->limit);
    uint64_t clen = end - start;
    if (clen > CRAMFS_MAX_COMPRESSED_BLOCK)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "'%s': block %u is %llu bytes compressed (limit %u)",
                f->name, b, (unsigned long long)clen, CRAMFS_MAX_COMPRESSED_BLOCK);
    if (clen == 0) {
        memset(r->dbuf, 0, expect); /* hole */
    } else {
        if ((st = cc_rd(r, start, r->cbuf, (size_t)clen, "compressed block"))) return st;
        if (inflateReset(&r->zs) != Z_OK)
            CC_FAIL(r, CCRAMFS_ERR_DECOMPRESS, "zlib inflateReset failed");
        r->zs.next_in = r->cbuf;
        r->zs.avail_in = (uInt)clen;
        r->zs.next_out = r->dbuf;
        r->zs.avail_out = CCRAMFS_BLOCK_SIZE;
        int zr = inflate(&r->zs, Z_FINISH);
        uint32_t got = CCRAMFS_BLOCK_SIZE - r->zs.avail_out;
        if (zr != Z_STREAM_END) {
            if (r->zs.avail_out == 0 && (zr == Z_BUF_ERROR || zr == Z_OK))
                CC_FAIL(r, CCRAMFS_ERR_DECOMPRESS,
                        "'%s': block %u decompresses to more than %u bytes", f->name, b,
                        CCRAMFS_BLOCK_SIZE);
            CC_FAIL(r, CCRAMFS_ERR_DECOMPRESS, "'%s': block %u: zlib error %d (%s)", f->name, b,
                    zr, r->zs.msg ? r->zs.msg : "truncated stream");
        }
        if (got != expect)
            CC_FAIL(r, CCRAMFS_ERR_DECOMPRESS, "'%s': block %u decompresses to %u bytes, expected %u",
                    f->name, b, got, expect);
    }
    r->cache_valid = 1;
    r->cache_off = f->offset;
    r->cache_size = f->size;
    r->cache_block = b;
    r->cache_len = expect;
    *len = expect;
    return CCRAMFS_OK;
}

ccramfs_status ccramfs_read(ccramfs_reader *r, const ccramfs_node *f, uint64_t offset, void *buf,
                            size_t len, size_t *out_len) {
    if (!r || !f || (!buf && len)) return CCRAMFS_ERR_INVALID_ARGUMENT;
    r->err[0] = '\0';
    if (out_len) *out_len = 0;
    uint32_t ty = cc_type(f->mode);
    if (ty != CCRAMFS_S_IFREG && ty != CCRAMFS_S_IFLNK)
        CC_FAIL(r, CCRAMFS_ERR_WRONG_TYPE, "'%s' is not a regular file or symlink", f->name);
    if (offset >= f->size || len == 0) return CCRAMFS_OK;
    uint64_t want = f->size - offset;
    if (want > len) want = len;
    uint64_t done = 0;
    while (done < want) {
        uint64_t pos = offset + done;
        uint32_t b = (uint32_t)(pos / CCRAMFS_BLOCK_SIZE), in = (uint32_t)(pos % CCRAMFS_BLOCK_SIZE);
        uint32_t blen;
        ccramfs_status st = cc_block(r, f, b, &blen);
        if (st) return st;
        uint64_t n = blen - in;
        if (n > want - done) n = want - done;
        memcpy((uint8_t *)buf + done, r->dbuf + in, (size_t)n);
        done += n;
    }
    if (out_len) *out_len = (size_t)done;
    return CCRAMFS_OK;
}

ccramfs_status ccramfs_readlink(ccramfs_reader *r, const ccramfs_node *l, char *buf,
                                size_t buflen, size_t *out_len) {
    if (!r || !l || !buf) return CCRAMFS_ERR_INVALID_ARGUMENT;
    r->err[0] = '\0';
    if (cc_type(l->mode) != CCRAMFS_S_IFLNK)
        CC_FAIL(r, CCRAMFS_ERR_WRONG_TYPE, "'%s' is not a symlink", l->name);
    if (l->size == 0 || l->size > CCRAMFS_MAX_SYMLINK_LEN)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "symlink '%s' has bad length %u", l->name, l->size);
    if (buflen < (size_t)l->size + 1)
        CC_FAIL(r, CCRAMFS_ERR_INVALID_ARGUMENT, "buffer of %zu bytes too small for %u + 1",
                buflen, l->size);
    size_t got = 0;
    ccramfs_status st = ccramfs_read(r, l, 0, buf, l->size, &got);
    if (st) return st;
    if (got != l->size || memchr(buf, '\0', got))
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "symlink '%s' target contains NUL", l->name);
    buf[got] = '\0';
    if (out_len) *out_len = got;
    return CCRAMFS_OK;
}

/* ---- walk ---- */

typedef struct cc_wframe {
    ccramfs_node dir;
    uint32_t cursor;
    uint32_t plen;
    int has_prev;
    uint32_t prev_len;
    char prev[CCRAMFS_MAX_NAME_LEN + 1];
} cc_wframe;

typedef struct cc_walk {
    ccramfs_reader *r;
    uint32_t flags;
    uint8_t *bits; /* one bit per 4-byte word of [0, limit) already claimed */
    uint64_t words;
    uint64_t *vkeys; /* verified data regions: offset << 24 | size (0 = empty) */
    size_t vcap, vcount;
    uint64_t end_dir, start_data;
    char path[CCRAMFS_MAX_PATH + CCRAMFS_MAX_NAME_LEN + 2];
} cc_walk;

/* Claims [a, b) (rounded out to words); fails if any word was claimed before. */
static ccramfs_status cc_claim(cc_walk *w, uint64_t a, uint64_t b, const char *what,
                               const char *name) {
    ccramfs_reader *r = w->r;
    uint64_t wa = a / 4, wb = (b + 3) / 4;
    if (wb > w->words)
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s of '%s' extends past the filesystem", what, name);
    for (uint64_t k = wa; k < wb; k++) {
        if (w->bits[k >> 3] & (1u << (k & 7)))
            CC_FAIL(r, CCRAMFS_ERR_LOOP,
                    "%s of '%s' at offset %llu overlaps data seen before (directory loop or "
                    "overlapping regions)",
                    what, name, (unsigned long long)(k * 4));
        w->bits[k >> 3] |= (uint8_t)(1u << (k & 7));
    }
    return CCRAMFS_OK;
}

/* 1 if (offset, size) was verified before; otherwise records it and returns 0 (-1: no memory). */
static int cc_seen_region(cc_walk *w, uint32_t offset, uint32_t size) {
    uint64_t key = ((uint64_t)offset << 24) | size;
    if (key == 0) return 1;
    if ((w->vcount + 1) * 2 > w->vcap) {
        size_t ncap = w->vcap ? w->vcap * 2 : 1024;
        uint64_t *nk = calloc(ncap, sizeof *nk);
        if (!nk) return -1;
        for (size_t i = 0; i < w->vcap; i++) {
            uint64_t k = w->vkeys[i];
            if (!k) continue;
            size_t s = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & (ncap - 1);
            while (nk[s]) s = (s + 1) & (ncap - 1);
            nk[s] = k;
        }
        free(w->vkeys);
        w->vkeys = nk;
        w->vcap = ncap;
    }
    size_t s = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (w->vcap - 1);
    while (w->vkeys[s]) {
        if (w->vkeys[s] == key) return 1;
        s = (s + 1) & (w->vcap - 1);
    }
    w->vkeys[s] = key;
    w->vcount++;
    return 0;
}

static ccramfs_status cc_verify_data(cc_walk *w, const ccramfs_node *n) {
    ccramfs_reader *r = w->r;
    int seen = cc_seen_region(w, n->offset, n->size);
    if (seen < 0) CC_FAIL(r, CCRAMFS_ERR_NO_MEMORY, "out of memory");
    if (seen) return CCRAMFS_OK; /* hard link: same data already checked */
    if (cc_type(n->mode) == CCRAMFS_S_IFLNK) {
        char target[CCRAMFS_MAX_SYMLINK_LEN + 1];
        ccramfs_status st = ccramfs_readlink(r, n, target, sizeof target, NULL);
        if (st) return st;
    }
    uint32_t nb = (n->size + CCRAMFS_BLOCK_SIZE - 1) / CCRAMFS_BLOCK_SIZE;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t blen;
        ccramfs_status st = cc_block(r, n, b, &blen);
        if (st) return st;
    }
    /* The region [offset, end of last block) must not overlap anything else. */
    uint8_t p[4];
    ccramfs_status st = cc_rd(r, (uint64_t)n->offset + 4ull * (nb - 1), p, 4, "block pointer");
    if (st) return st;
    return cc_claim(w, n->offset, cc_get32(p), "data", n->name);
}

static ccramfs_status cc_check_node(cc_walk *w, const ccramfs_node *n) {
    ccramfs_reader *r = w->r;
    uint32_t ty = cc_type(n->mode);
    int strict = (w->flags & CCRAMFS_WALK_STRICT) != 0;
    switch (ty) {
    case CCRAMFS_S_IFDIR: {
        uint64_t end;
        ccramfs_status st = cc_dir_area(r, n, &end);
        if (st) return st;
        if (n->size && end > w->end_dir) w->end_dir = end;
        return CCRAMFS_OK;
    }
    case CCRAMFS_S_IFREG:
    case CCRAMFS_S_IFLNK:
        if (ty == CCRAMFS_S_IFLNK && (n->size == 0 || n->size > CCRAMFS_MAX_SYMLINK_LEN))
            CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s: symlink has bad length %u", w->path, n->size);
        if (n->size == 0) {
            if (strict && n->offset != 0)
                CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s: empty file has a data offset", w->path);
            return CCRAMFS_OK;
        }
        if (n->offset == 0)
            CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s: %u bytes of data at offset zero", w->path,
                    n->size);
        if (n->offset < w->start_data) w->start_data = n->offset;
        if (w->flags & CCRAMFS_WALK_VERIFY_DATA) return cc_verify_data(w, n);
        return CCRAMFS_OK;
    case CCRAMFS_S_IFCHR:
    case CCRAMFS_S_IFBLK:
    case CCRAMFS_S_IFIFO:
    case CCRAMFS_S_IFSOCK:
        if (strict && n->offset != 0)
            CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s: special file has a data offset", w->path);
        if (strict && (ty == CCRAMFS_S_IFIFO || ty == CCRAMFS_S_IFSOCK) && n->size != 0)
            CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s: fifo/socket has non-zero size", w->path);
        return CCRAMFS_OK;
    default:
        CC_FAIL(r, CCRAMFS_ERR_CORRUPT, "%s: bogus mode 0%o", w->path, n->mode);
    }
}

ccramfs_status ccramfs_walk(ccramfs_reader *r, uint32_t flags, ccramfs_walk_fn fn, void *ctx) {
    if (!r) return CCRAMFS_ERR_INVALID_ARGUMENT;
    r->err[0] = '\0';
    ccramfs_status st = CCRAMFS_OK;
    cc_walk *w = calloc(1, sizeof *w);
    cc_wframe *frames = calloc(CCRAMFS_MAX_DEPTH, sizeof *frames);
    if (w) {
        w->words = (r->limit + 3) / 4;
        w->bits = calloc((size_t)(w->words / 8 + 1), 1);
    }
    if (!w || !frames || !w->bits) {
        cc_msg(r->err, sizeof r->err, "out of memory");
        st = CCRAMFS_ERR_NO_MEMORY;
        goto out;
    }
    w->r = r;
    w->flags = flags;
    w->start_data = UINT64_MAX;
    /* The superblock (and any padding before it) is never directory or file data. */
    if ((st = cc_claim(w, 0, r->start + CRAMFS_SUPER_SIZE, "superblock", "/"))) goto out;

    cc_wframe *f = &frames[0];
    if ((st = ccramfs_root(r, &f->dir))) goto out;
    w->path[0] = '/';
    w->path[1] = '\0';
    if ((st = cc_check_node(w, &f->dir))) goto out;
    if (fn && fn(ctx, w->path, 1, &f->dir) != 0) {
        cc_msg(r->err, sizeof r->err, "walk stopped by the callback at /");
        st = CCRAMFS_ERR_ABORTED;
        goto out;
    }
    uint32_t depth = 1;
    uint64_t count = 1;
    ccramfs_node node;
    while (depth > 0) {
        f = &frames[depth - 1];
        st = ccramfs_readdir(r, &f->dir, &f->cursor, &node);
        if (st == CCRAMFS_DONE) {
            depth--;
            st = CCRAMFS_OK;
            continue;
        }
        if (st) goto out;
        if (++count > CCRAMFS_MAX_WALK_ENTRIES) {
            cc_msg(r->err, sizeof r->err, "more than %u inodes", CCRAMFS_MAX_WALK_ENTRIES);
            st = CCRAMFS_ERR_TOO_MANY_ENTRIES;
            goto out;
        }
        /* the entry's size: 12 + its stored (padded) name length */
        uint64_t esz = (uint64_t)f->cursor - (node.handle - f->dir.offset);
        if ((st = cc_claim(w, node.handle, node.handle + esz, "directory entry", node.name)))
            goto out;
        if ((flags & CCRAMFS_WALK_STRICT) && f->has_prev &&
            cc_name_cmp(f->prev, f->prev_len, node.name, node.name_len) >= 0) {
            w->path[f->plen ? f->plen : 1] = '\0';
            cc_msg(r->err, sizeof r->err, "%s: entries '%s' and '%s' are not sorted/unique",
                   w->path, f->prev, node.name);
            st = CCRAMFS_ERR_CORRUPT;
            goto out;
        }
        f->has_prev = 1;
        f->prev_len = node.name_len;
        memcpy(f->prev, node.name, node.name_len + 1);
        uint32_t plen = f->plen + 1 + node.name_len;
        if (plen > CCRAMFS_MAX_PATH) {
            cc_msg(r->err, sizeof r->err, "path longer than %u bytes under %.200s",
                   CCRAMFS_MAX_PATH, w->path);
            st = CCRAMFS_ERR_TOO_DEEP;
            goto out;
        }
        w->path[f->plen] = '/';
        memcpy(w->path + f->plen + 1, node.name, node.name_len + 1);
        if ((st = cc_check_node(w, &node))) goto out;
        if (fn && fn(ctx, w->path, plen, &node) != 0) {
            cc_msg(r->err, sizeof r->err, "walk stopped by the callback at %s", w->path);
            st = CCRAMFS_ERR_ABORTED;
            goto out;
        }
        if (cc_type(node.mode) == CCRAMFS_S_IFDIR && node.size > 0) {
            if (depth >= CCRAMFS_MAX_DEPTH) {
                cc_msg(r->err, sizeof r->err, "directories nested deeper than %u at %.200s",
                       CCRAMFS_MAX_DEPTH, w->path);
                st = CCRAMFS_ERR_TOO_DEEP;
                goto out;
            }
            cc_wframe *c = &frames[depth++];
            memset(c, 0, sizeof *c);
            c->dir = node;
            c->plen = plen;
        }
    }
    if ((flags & CCRAMFS_WALK_STRICT) && r->info.fsid_version_2 && count != r->info.files) {
        cc_msg(r->err, sizeof r->err, "superblock counts %u inodes but the tree has %llu",
               r->info.files, (unsigned long long)count);
        st = CCRAMFS_ERR_CORRUPT;
        goto out;
    }
    if ((flags & CCRAMFS_WALK_STRICT) && w->start_data != UINT64_MAX) {
        uint64_t root_end = w->end_dir ? w->end_dir : r->start + CRAMFS_SUPER_SIZE;
        if (root_end != w->start_data) {
            cc_msg(r->err, sizeof r->err,
                   "directory area ends at %llu but file data starts at %llu",
                   (unsigned long long)root_end, (unsigned long long)w->start_data);
            st = CCRAMFS_ERR_CORRUPT;
            goto out;
        }
    }
out:
    if (w) {
        free(w->bits);
        free(w->vkeys);
    }
    free(w);
    free(frames);
    return st;
}
