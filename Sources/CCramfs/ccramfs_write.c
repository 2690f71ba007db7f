/*
 * CCramfs writer.
 *
 * Layout (the one util-linux mkfs.cramfs produces, so images can be compared byte for byte):
 *   [0, 76)            superblock with the root inode
 *   [76, meta_size)    directory entries: the root's entries, then each non-empty directory's
 *                      entries in depth-first pre-order of the sorted tree
 *   [meta_size, end)   file data in depth-first pre-order; per file: u32 block end pointers,
 *                      zlib blocks (one per 4 KiB page), zero padding to 4 bytes
 *   [end, size)        zero padding to a multiple of 4096
 * The metadata size does not depend on the data, so it is laid out first (in memory), the data
 * is streamed, and the data offsets are patched into the metadata, which is written last (or,
 * with CCRAMFS_WRITE_SEQUENTIAL, after a first pass that only measures the compressed sizes).
 *
 * Threads (options.threads > 1): the calling thread stays the only one that runs callbacks. It
 * reads pages in the usual order into a ring of slots (CC_SLOTS_PER_WORKER per worker), the
 * workers compress the slots in publication order, each with its own z_stream, and the calling
 * thread retires finished slots strictly in ring order: the same per-file steps (pointer table,
 * blocks, padding, CRC) as the single-threaded path, so the bytes and the output calls are the
 * same; only the read callback runs ahead of the output by up to one ring.
 */
#define _GNU_SOURCE /* pthread_sigmask, sigfillset under strict -std */
#include "ccramfs_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <zlib.h>

#define CC_NONE UINT32_MAX
#define CC_CBUF_SIZE (2u * CCRAMFS_BLOCK_SIZE + 64u)
#define CC_MAX_BLOCKS_PER_FILE ((CCRAMFS_MAX_FILE_SIZE + CCRAMFS_BLOCK_SIZE - 1) / CCRAMFS_BLOCK_SIZE)
#ifndef CC_SLOTS_PER_WORKER /* ring slots per worker (compile-time knob for experiments) */
#define CC_SLOTS_PER_WORKER 16u
#endif
#define CC_WORKER_STACK (256u * 1024u)

struct cc_pool;

typedef struct cc_kid {
    const char *name;
    uint32_t len;
    uint32_t idx;
} cc_kid;

typedef struct cc_frame {
    uint32_t dir;
    uint32_t cur;
} cc_frame;

typedef struct cc_writer {
    const ccramfs_tree *t;
    uint32_t n;
    ccramfs_read_fn rd;
    void *rctx;
    ccramfs_output_fn out;
    void *octx;
    char *err;
    size_t errlen;

    uint32_t *kid_start; /* n + 1: children of i are kids[kid_start[i] .. kid_start[i+1]) */
    uint32_t *kids;      /* sorted by name within each directory */
    uint32_t *dir_size;  /* bytes of a directory's entries */
    uint32_t *ipos;      /* image offset of each inode (root: 64) */
    uint32_t *child_off; /* directories: offset of the first entry (0 if empty) */
    uint32_t *owner;     /* entry whose data this entry uses (itself if it owns data) */
    uint32_t *data_off;  /* owners: offset of their data */
    uint32_t *order;     /* owners in data order */
    uint32_t norder;
    cc_frame *stack;

    uint8_t *meta;
    uint32_t meta_size;

    z_stream zs;
    int zs_ok;
    int level;
    uint8_t page[CCRAMFS_BLOCK_SIZE];
    uint8_t page2[CCRAMFS_BLOCK_SIZE];
    uint8_t cbuf[CC_CBUF_SIZE];
    uint8_t ptrbuf[4u * CC_MAX_BLOCKS_PER_FILE];

    struct cc_pool *pool; /* threads > 1: compression workers (NULL = compress on this thread) */
    uint16_t *bsizes; /* sequential mode: compressed size of every block, in data order */
#ifdef CCRAMFS_FAULT_INJECTION
    uint64_t fault_count; /* test builds: blocks compressed on this thread */
#endif
    uint64_t cur;     /* next data offset */
    uint32_t crc_data;
    uint64_t in_bytes;
    uint32_t blocks;
    uint32_t shared;
} cc_writer;

enum { CC_POSITIONAL, CC_MEASURE, CC_EMIT_SEQUENTIAL };

static const uint8_t cc_zeros[CCRAMFS_BLOCK_SIZE];

static void cc_path_of(const cc_writer *w, uint32_t i, char *buf, size_t len) {
    cc_tree_path(w->t, i, NULL, 0, buf, len);
}

static int cc_kid_cmp(const void *a, const void *b) {
    const cc_kid *x = a, *y = b;
    return cc_name_cmp(x->name, x->len, y->name, y->len);
}

static int cc_is_dir(const cc_writer *w, uint32_t i) {
    return cc_type(w->t->nodes[i].mode) == CCRAMFS_S_IFDIR;
}

/* Regular files with content and symlinks carry data. */
static int cc_has_data(const cc_writer *w, uint32_t i) {
    const cc_tnode *nd = &w->t->nodes[i];
    uint32_t ty = cc_type(nd->mode);
    return (ty == CCRAMFS_S_IFREG && nd->size > 0) || ty == CCRAMFS_S_IFLNK;
}

static ccramfs_status cc_build_children(cc_writer *w) {
    uint32_t n = w->n;
    w->kid_start = calloc((size_t)n + 1, sizeof(uint32_t));
    w->kids = malloc((size_t)n * sizeof(uint32_t));
    cc_kid *recs = malloc((size_t)n * sizeof(cc_kid));
    uint32_t *fill = calloc((size_t)n, sizeof(uint32_t));
    if (!w->kid_start || !w->kids || !recs || !fill) {
        free(recs);
        free(fill);
        cc_msg(w->err, w->errlen, "out of memory");
        return CCRAMFS_ERR_NO_MEMORY;
    }
    for (uint32_t i = 1; i < n; i++) w->kid_start[w->t->nodes[i].parent + 1]++;
    for (uint32_t i = 0; i < n; i++) w->kid_start[i + 1] += w->kid_start[i];
    for (uint32_t i = 1; i < n; i++) {
        uint32_t p = w->t->nodes[i].parent;
        cc_kid *k = &recs[w->kid_start[p] + fill[p]++];
        k->name = cc_tname(w->t, i);
        k->len = w->t->nodes[i].name_len;
        k->idx = i;
    }
    for (uint32_t d = 0; d < n; d++) {
        uint32_t a = w->kid_start[d], b = w->kid_start[d + 1];
        if (b - a > 1) qsort(recs + a, b - a, sizeof(cc_kid), cc_kid_cmp);
        for (uint32_t k = a; k < b; k++) w->kids[k] = recs[k].idx;
    }
    free(recs);
    free(fill);
    return CCRAMFS_OK;
}

/* Directory sizes and the position of every inode (mkfs.cramfs order). */
static ccramfs_status cc_layout_metadata(cc_writer *w) {
    uint32_t n = w->n;
    char path[600];
    for (uint32_t d = 0; d < n; d++) {
        if (!cc_is_dir(w, d)) continue;
        uint64_t sz = 0;
        for (uint32_t k = w->kid_start[d]; k < w->kid_start[d + 1]; k++)
            sz += CRAMFS_INODE_SIZE + cc_pad4(w->t->nodes[w->kids[k]].name_len);
        if (sz > CCRAMFS_MAX_DIR_SIZE) {
            cc_path_of(w, d, path, sizeof path);
            cc_msg(w->err, w->errlen,
                   "%s: directory entries take %llu bytes; cramfs directories are limited to %u",
                   path, (unsigned long long)sz, CCRAMFS_MAX_DIR_SIZE);
            return CCRAMFS_ERR_DIRECTORY_TOO_LARGE;
        }
        w->dir_size[d] = (uint32_t)sz;
    }
    uint64_t pos = CRAMFS_SUPER_SIZE;
    w->ipos[0] = CRAMFS_ROOT_INODE_OFFSET;
#define CC_PLACE(D)                                                                                \
    do {                                                                                           \
        uint32_t d_ = (D);                                                                         \
        if (pos > CCRAMFS_MAX_OFFSET) goto too_big;                                                \
        w->child_off[d_] = (uint32_t)pos;                                                          \
        for (uint32_t k_ = w->kid_start[d_]; k_ < w->kid_start[d_ + 1]; k_++) {                   \
            uint32_t c_ = w->kids[k_];                                                             \
            w->ipos[c_] = (uint32_t)pos;                                                           \
            pos += CRAMFS_INODE_SIZE + cc_pad4(w->t->nodes[c_].name_len);                         \
        }                                                                                          \
    } while (0)
    CC_PLACE(0); /* the root's entries always start at 76, even when it is empty */
    uint32_t sp = 0;
    w->stack[sp++] = (cc_frame){0, w->kid_start[0]};
    while (sp > 0) {
        cc_frame *f = &w->stack[sp - 1];
        uint32_t end = w->kid_start[f->dir + 1];
        while (f->cur < end && !(cc_is_dir(w, w->kids[f->cur]) && w->dir_size[w->kids[f->cur]] > 0))
            f->cur++;
        if (f->cur == end) {
            sp--;
            continue;
        }
        uint32_t c = w->kids[f->cur++];
        CC_PLACE(c);
        w->stack[sp++] = (cc_frame){c, w->kid_start[c]};
    }
#undef CC_PLACE
    if (pos > CCRAMFS_MAX_OFFSET) goto too_big;
    w->meta_size = (uint32_t)pos;
    return CCRAMFS_OK;
too_big:
    cc_msg(w->err, w->errlen,
           "directory metadata exceeds %u bytes (cramfs offsets are 26 bits of 4-byte units)",
           CCRAMFS_MAX_OFFSET);
    return CCRAMFS_ERR_IMAGE_TOO_LARGE;
}

/* Pre-order list of every data-carrying entry (mkfs.cramfs write_data order). */
static uint32_t cc_data_preorder(cc_writer *w, uint32_t *list) {
    uint32_t cnt = 0, sp = 0;
    w->stack[sp++] = (cc_frame){0, w->kid_start[0]};
    while (sp > 0) {
        cc_frame *f = &w->stack[sp - 1];
        if (f->cur == w->kid_start[f->dir + 1]) {
            sp--;
            continue;
        }
        uint32_t c = w->kids[f->cur++];
        if (cc_has_data(w, c))
            list[cnt++] = c;
        else if (cc_is_dir(w, c) && w->kid_start[c + 1] > w->kid_start[c])
            w->stack[sp++] = (cc_frame){c, w->kid_start[c]};
    }
    return cnt;
}

/* ---- content access ---- */

static ccramfs_status cc_get_page(cc_writer *w, uint32_t i, uint64_t off, uint8_t *buf,
                                  size_t len) {
    const cc_tnode *nd = &w->t->nodes[i];
    if (cc_type(nd->mode) == CCRAMFS_S_IFLNK) {
        memcpy(buf, w->t->arena + nd->link_off + off, len);
        return CCRAMFS_OK;
    }
    int rc = w->rd(w->rctx, nd->cookie, off, buf, len);
    if (rc != 0) {
        char path[600];
        cc_path_of(w, i, path, sizeof path);
        cc_msg(w->err, w->errlen, "%s: read callback failed with %d (cookie %llu, offset %llu)",
               path, rc, (unsigned long long)nd->cookie, (unsigned long long)off);
        return CCRAMFS_ERR_READ_CALLBACK;
    }
    return CCRAMFS_OK;
}

static ccramfs_status cc_hash(cc_writer *w, uint32_t i, uint64_t *h) {
    uint32_t size = w->t->nodes[i].size;
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    uint64_t f = 1469598103934665603ull;
    for (uint64_t off = 0; off < size; off += CCRAMFS_BLOCK_SIZE) {
        size_t len = size - off < CCRAMFS_BLOCK_SIZE ? (size_t)(size - off) : CCRAMFS_BLOCK_SIZE;
        ccramfs_status st = cc_get_page(w, i, off, w->page, len);
        if (st) return st;
        crc = (uint32_t)crc32(crc, w->page, (uInt)len);
        for (size_t k = 0; k < len; k += 8) {
            uint64_t v = 0;
            memcpy(&v, w->page + k, len - k < 8 ? len - k : 8);
            f = (f ^ v) * 0x100000001b3ull;
            f ^= f >> 31;
        }
    }
    *h = f ^ ((uint64_t)crc << 32) ^ crc;
    return CCRAMFS_OK;
}

static ccramfs_status cc_same_content(cc_writer *w, uint32_t a, uint32_t b, int *same) {
    uint32_t size = w->t->nodes[a].size;
    *same = 0;
    for (uint64_t off = 0; off < size; off += CCRAMFS_BLOCK_SIZE) {
        size_t len = size - off < CCRAMFS_BLOCK_SIZE ? (size_t)(size - off) : CCRAMFS_BLOCK_SIZE;
        ccramfs_status st = cc_get_page(w, a, off, w->page, len);
        if (st) return st;
        st = cc_get_page(w, b, off, w->page2, len);
        if (st) return st;
        if (memcmp(w->page, w->page2, len) != 0) return CCRAMFS_OK;
    }
    *same = 1;
    return CCRAMFS_OK;
}

/* ---- data sharing ---- */

static uint64_t cc_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Hard links: regular files with equal cookie, mode, uid and gid share the first one's data. */
static ccramfs_status cc_share_cookies(cc_writer *w, const uint32_t *pre, uint32_t npre) {
    size_t cap = 16;
    while (cap < (size_t)npre * 2) cap *= 2;
    uint32_t *slots = malloc(cap * sizeof(uint32_t));
    if (!slots) {
        cc_msg(w->err, w->errlen, "out of memory");
        return CCRAMFS_ERR_NO_MEMORY;
    }
    for (size_t s = 0; s < cap; s++) slots[s] = CC_NONE;
    for (uint32_t k = 0; k < npre; k++) {
        uint32_t i = pre[k];
        const cc_tnode *nd = &w->t->nodes[i];
        w->owner[i] = i;
        if (cc_type(nd->mode) != CCRAMFS_S_IFREG) continue;
        uint64_t h = cc_mix(nd->cookie ^ cc_mix(((uint64_t)nd->mode << 40) ^
                                               ((uint64_t)nd->uid << 8) ^ nd->gid));
        size_t s = (size_t)h & (cap - 1);
        for (;;) {
            uint32_t o = slots[s];
            if (o == CC_NONE) {
                slots[s] = i;
                break;
            }
            const cc_tnode *on = &w->t->nodes[o];
            if (on->cookie == nd->cookie && on->mode == nd->mode && on->uid == nd->uid &&
                on->gid == nd->gid) {
                if (on->size != nd->size) {
                    char p1[600], p2[600];
                    cc_path_of(w, o, p1, sizeof p1);
                    cc_path_of(w, i, p2, sizeof p2);
                    cc_msg(w->err, w->errlen,
                           "%s (%u bytes) and %s (%u bytes) have the same data cookie %llu", p1,
                           on->size, p2, nd->size, (unsigned long long)nd->cookie);
                    free(slots);
                    return CCRAMFS_ERR_INCONSISTENT;
                }
                w->owner[i] = o;
                break;
            }
            s = (s + 1) & (cap - 1);
        }
    }
    free(slots);
    return CCRAMFS_OK;
}

typedef struct cc_cand {
    uint32_t mode, uid, gid, size;
    uint64_t hash;
    uint32_t rank; /* position in data pre-order */
    uint32_t idx;
} cc_cand;

static int cc_cand_cmp_attrs(const cc_cand *x, const cc_cand *y) {
    if (x->mode != y->mode) return x->mode < y->mode ? -1 : 1;
    if (x->uid != y->uid) return x->uid < y->uid ? -1 : 1;
    if (x->gid != y->gid) return x->gid < y->gid ? -1 : 1;
    if (x->size != y->size) return x->size < y->size ? -1 : 1;
    return 0;
}

static int cc_cand_cmp1(const void *a, const void *b) {
    const cc_cand *x = a, *y = b;
    int c = cc_cand_cmp_attrs(x, y);
    if (c) return c;
    return x->rank < y->rank ? -1 : (x->rank > y->rank ? 1 : 0);
}

static int cc_cand_cmp2(const void *a, const void *b) {
    const cc_cand *x = a, *y = b;
    int c = cc_cand_cmp_attrs(x, y);
    if (c) return c;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->rank < y->rank ? -1 : (x->rank > y->rank ? 1 : 0);
}

/* CCRAMFS_WRITE_DEDUPLICATE: owners with equal content and attributes share the earliest's data. */
static ccramfs_status cc_share_content(cc_writer *w, const uint32_t *pre, uint32_t npre) {
    uint32_t nc = 0;
    cc_cand *c = malloc((size_t)(npre ? npre : 1) * sizeof(cc_cand));
    if (!c) {
        cc_msg(w->err, w->errlen, "out of memory");
        return CCRAMFS_ERR_NO_MEMORY;
    }
    for (uint32_t k = 0; k < npre; k++) {
        uint32_t i = pre[k];
        if (w->owner[i] != i) continue;
        const cc_tnode *nd = &w->t->nodes[i];
        c[nc++] = (cc_cand){nd->mode, nd->uid, nd->gid, nd->size, 0, k, i};
    }
    qsort(c, nc, sizeof(cc_cand), cc_cand_cmp1);
    ccramfs_status st = CCRAMFS_OK;
    for (uint32_t a = 0; a < nc;) {
        uint32_t b = a + 1;
        while (b < nc && cc_cand_cmp_attrs(&c[a], &c[b]) == 0) b++;
        if (b - a > 1) {
            for (uint32_t k = a; k < b; k++)
                if ((st = cc_hash(w, c[k].idx, &c[k].hash))) goto done;
            qsort(c + a, b - a, sizeof(cc_cand), cc_cand_cmp2);
            for (uint32_t r = a; r < b;) {
                uint32_t e = r + 1;
                while (e < b && c[e].hash == c[r].hash) e++;
                for (uint32_t k = r + 1; k < e; k++) {
                    int same = 0;
                    if ((st = cc_same_content(w, c[r].idx, c[k].idx, &same))) goto done;
                    if (same) w->owner[c[k].idx] = c[r].idx; /* c[r] is the earliest */
                }
                r = e;
            }
        }
        a = b;
    }
done:
    free(c);
    return st;
}

/* ---- compression and output ---- */

static ccramfs_status cc_emit(cc_writer *w, uint64_t off, const void *buf, size_t len) {
    if (len == 0) return CCRAMFS_OK;
    int rc = w->out(w->octx, off, buf, len);
    if (rc != 0) {
        cc_msg(w->err, w->errlen, "output callback failed with %d at offset %llu (%zu bytes)", rc,
               (unsigned long long)off, len);
        return CCRAMFS_ERR_OUTPUT_CALLBACK;
    }
    return CCRAMFS_OK;
}

/* One cramfs block: a complete zlib stream of `len` bytes into dst (cap bytes). 1 on success. */
static int cc_deflate_block(z_stream *zs, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                            size_t *clen) {
    if (deflateReset(zs) != Z_OK) return 0;
    zs->next_in = (Bytef *)(uintptr_t)src;
    zs->avail_in = (uInt)len;
    zs->next_out = dst;
    zs->avail_out = (uInt)cap;
    if (deflate(zs, Z_FINISH) != Z_STREAM_END) return 0;
    *clen = (size_t)zs->total_out;
    return *clen <= CRAMFS_MAX_COMPRESSED_BLOCK;
}

static ccramfs_status cc_zlib_failed(cc_writer *w) {
    cc_msg(w->err, w->errlen, "zlib compression failed");
    return CCRAMFS_ERR_ZLIB;
}

static ccramfs_status cc_compress(cc_writer *w, const uint8_t *src, size_t len, size_t *clen) {
    int ok = cc_deflate_block(&w->zs, src, len, w->cbuf, sizeof w->cbuf, clen);
#ifdef CCRAMFS_FAULT_INJECTION
    const char *fs = getenv("CCRAMFS_FAULT_BLOCK");
    if (fs && ++w->fault_count == strtoull(fs, NULL, 10)) ok = 0;
#endif
    if (!ok) return cc_zlib_failed(w);
    return CCRAMFS_OK;
}

/*
 * Per-file steps, shared by the single-threaded and the threaded pass. The data of owner i
 * starts at w->cur:
 * CC_POSITIONAL: writes blocks, then the pointer table before them.
 * CC_MEASURE: no output; records block sizes into bsizes[bidx...].
 * CC_EMIT_SEQUENTIAL: writes the pointer table from the recorded sizes, then the blocks,
 *   checking that they compress to the recorded sizes.
 */
typedef struct cc_file_state {
    uint32_t i;      /* entry */
    uint32_t nb;     /* blocks */
    uint32_t b;      /* blocks done */
    uint64_t bidx;   /* index of its first block in data order (bsizes) */
    uint64_t off;    /* pointer table */
    uint64_t bstart; /* first block */
    uint64_t bpos;   /* end of the blocks done */
    uint32_t crc_b;  /* CRC of the blocks done */
} cc_file_state;

static ccramfs_status cc_file_begin(cc_writer *w, cc_file_state *f, uint32_t i, int mode,
                                    uint64_t bidx) {
    const cc_tnode *nd = &w->t->nodes[i];
    uint64_t off = w->cur;
    if (off > CCRAMFS_MAX_OFFSET) {
        char path[600];
        cc_path_of(w, i, path, sizeof path);
        cc_msg(w->err, w->errlen,
               "%s: data would start at offset %llu; cramfs data must start below 256 MiB "
               "(26-bit offsets in 4-byte units)",
               path, (unsigned long long)off);
        return CCRAMFS_ERR_IMAGE_TOO_LARGE;
    }
    f->i = i;
    f->nb = (nd->size + CCRAMFS_BLOCK_SIZE - 1) / CCRAMFS_BLOCK_SIZE;
    f->b = 0;
    f->bidx = bidx;
    f->off = off;
    f->bstart = off + 4ull * f->nb;
    f->bpos = f->bstart;
    f->crc_b = (uint32_t)crc32(0L, Z_NULL, 0);
    if (mode == CC_EMIT_SEQUENTIAL) {
        uint64_t p = f->bstart;
        for (uint32_t b = 0; b < f->nb; b++) {
            p += w->bsizes[bidx + b];
            cc_put32(w->ptrbuf + 4u * b, (uint32_t)p);
        }
        return cc_emit(w, off, w->ptrbuf, 4u * f->nb);
    }
    return CCRAMFS_OK;
}

/* Block f->b of the file compressed to cbuf[0, clen). */
static ccramfs_status cc_file_block(cc_writer *w, cc_file_state *f, int mode, const uint8_t *cbuf,
                                    size_t clen) {
    uint32_t b = f->b;
    ccramfs_status st;
    if (mode == CC_MEASURE) {
        w->bsizes[f->bidx + b] = (uint16_t)clen;
    } else {
        if (mode == CC_EMIT_SEQUENTIAL && clen != w->bsizes[f->bidx + b]) {
            char path[600];
            cc_path_of(w, f->i, path, sizeof path);
            cc_msg(w->err, w->errlen,
                   "%s: content changed between the two passes (block %u compressed to %zu "
                   "bytes, first pass %u)",
                   path, b, clen, (unsigned)w->bsizes[f->bidx + b]);
            return CCRAMFS_ERR_INPUT_CHANGED;
        }
        if ((st = cc_emit(w, f->bpos, cbuf, clen))) return st;
    }
    f->crc_b = (uint32_t)crc32(f->crc_b, cbuf, (uInt)clen);
    f->bpos += clen;
    cc_put32(w->ptrbuf + 4u * b, (uint32_t)f->bpos);
    f->b = b + 1;
    return CCRAMFS_OK;
}

/* After the last block: padding, pointer table (positional), CRC, bookkeeping. */
static ccramfs_status cc_file_end(cc_writer *w, cc_file_state *f, int mode) {
    ccramfs_status st;
    uint64_t bpos = f->bpos;
    size_t pad = (size_t)(cc_pad4(bpos) - bpos);
    uint32_t crc_b = f->crc_b;
    if (pad) {
        if (mode != CC_MEASURE && (st = cc_emit(w, bpos, cc_zeros, pad))) return st;
        crc_b = (uint32_t)crc32(crc_b, cc_zeros, (uInt)pad);
    }
    if (mode == CC_POSITIONAL && (st = cc_emit(w, f->off, w->ptrbuf, 4u * f->nb))) return st;
    uint32_t crc_p = (uint32_t)crc32(0L, Z_NULL, 0);
    crc_p = (uint32_t)crc32(crc_p, w->ptrbuf, 4u * f->nb);
    uint64_t end = bpos + pad;
    uint32_t crc_f = (uint32_t)crc32_combine(crc_p, crc_b, (z_off_t)(end - f->bstart));
    w->crc_data = (uint32_t)crc32_combine(w->crc_data, crc_f, (z_off_t)(end - f->off));
    w->data_off[f->i] = (uint32_t)f->off;
    w->cur = end;
    w->in_bytes += w->t->nodes[f->i].size;
    return CCRAMFS_OK;
}

/* Single-threaded: one owner at w->cur, read, compressed and written block by block. */
static ccramfs_status cc_file_data(cc_writer *w, uint32_t i, int mode, uint64_t *bidx) {
    uint32_t size = w->t->nodes[i].size;
    cc_file_state f;
    ccramfs_status st;
    if ((st = cc_file_begin(w, &f, i, mode, *bidx))) return st;
    for (uint32_t b = 0; b < f.nb; b++) {
        uint64_t poff = (uint64_t)b * CCRAMFS_BLOCK_SIZE;
        size_t len = size - poff < CCRAMFS_BLOCK_SIZE ? (size_t)(size - poff) : CCRAMFS_BLOCK_SIZE;
        if ((st = cc_get_page(w, i, poff, w->page, len))) return st;
        size_t clen;
        if ((st = cc_compress(w, w->page, len, &clen))) return st;
        if ((st = cc_file_block(w, &f, mode, w->cbuf, clen))) return st;
    }
    if ((st = cc_file_end(w, &f, mode))) return st;
    *bidx += f.nb;
    return CCRAMFS_OK;
}

/* ---- compression workers (threads > 1) ---- */

typedef struct cc_slot {
    uint8_t *in;   /* one page (CCRAMFS_BLOCK_SIZE) */
    uint8_t *out;  /* pool->out_cap bytes */
    uint32_t len;  /* page length */
    uint32_t clen; /* compressed length */
    int failed;    /* zlib error */
    int done;      /* compressed; guarded by mu */
} cc_slot;

typedef struct cc_worker {
    struct cc_pool *pool;
    z_stream zs;
    pthread_t thread;
} cc_worker;

/*
 * Ring protocol: the calling thread fills slot (tail % cap) while tail - head < cap, then
 * publishes it by incrementing tail under mu. Workers claim published slots in order (claim),
 * compress them and set done under mu. The calling thread retires slot (head % cap) once it is
 * done, and only it reads or writes head, the slot contents outside mu, and the writer.
 */
typedef struct cc_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: a slot was published, or stop */
    pthread_cond_t done_cv; /* calling thread: slot wait_seq is done */
    int mu_ok, work_ok, done_ok;
    cc_slot *slots;
    uint8_t *buf;
    uint32_t cap;      /* slots in the ring */
    size_t out_cap;    /* deflateBound of one page */
    uint64_t head;     /* next slot to retire (calling thread only) */
    uint64_t tail;     /* slots published (mu) */
    uint64_t claim;    /* slots claimed by workers (mu) */
    uint64_t wait_seq; /* mu: the slot the calling thread sleeps on, if waiting */
    int waiting;       /* mu */
    int stop;          /* mu */
    uint32_t nworkers; /* worker structs with an initialised z_stream */
    uint32_t nthreads; /* running threads (workers[0, nthreads)) */
    cc_worker *workers;
#ifdef CCRAMFS_FAULT_INJECTION
    uint64_t fail_seq; /* test builds: the fail_seq-th block of the write fails to compress */
#endif
} cc_pool;

static void *cc_worker_main(void *arg) {
    cc_worker *wk = arg;
    cc_pool *p = wk->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->claim == p->tail) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop) break;
        uint64_t seq = p->claim++;
        cc_slot *s = &p->slots[seq % p->cap];
        pthread_mutex_unlock(&p->mu);
        size_t clen = 0;
        int ok = cc_deflate_block(&wk->zs, s->in, s->len, s->out, p->out_cap, &clen);
#ifdef CCRAMFS_FAULT_INJECTION
        if (seq + 1 == p->fail_seq) ok = 0;
#endif
        pthread_mutex_lock(&p->mu);
        s->clen = (uint32_t)clen;
        s->failed = !ok;
        s->done = 1;
        if (p->waiting && p->wait_seq == seq) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Stops and joins the workers (in-flight slots are dropped) and frees everything. */
static void cc_pool_free(cc_pool *p) {
    if (!p) return;
    if (p->nthreads) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
        for (uint32_t k = 0; k < p->nthreads; k++) pthread_join(p->workers[k].thread, NULL);
    }
    for (uint32_t k = 0; k < p->nworkers; k++) deflateEnd(&p->workers[k].zs);
    if (p->done_ok) pthread_cond_destroy(&p->done_cv);
    if (p->work_ok) pthread_cond_destroy(&p->work_cv);
    if (p->mu_ok) pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p->slots);
    free(p->buf);
    free(p);
}

/*
 * Starts up to `threads` workers. Returns CCRAMFS_OK with *out = NULL when no thread could be
 * started (the caller then compresses on its own thread).
 */
static ccramfs_status cc_pool_new(cc_writer *w, uint32_t threads, cc_pool **out) {
    *out = NULL;
    cc_pool *p = calloc(1, sizeof *p);
    if (!p) goto nomem;
    p->workers = calloc(threads, sizeof(cc_worker));
    if (!p->workers) goto nomem;
    for (uint32_t k = 0; k < threads; k++) {
        if (deflateInit(&p->workers[k].zs, w->level) != Z_OK) {
            cc_pool_free(p);
            cc_msg(w->err, w->errlen, "zlib deflateInit failed");
            return CCRAMFS_ERR_ZLIB;
        }
        p->workers[k].pool = p;
        p->nworkers++;
    }
    p->out_cap = (size_t)deflateBound(&p->workers[0].zs, CCRAMFS_BLOCK_SIZE);
    p->out_cap = (p->out_cap + 63u) & ~(size_t)63u;
    p->cap = threads * CC_SLOTS_PER_WORKER;
    p->slots = calloc(p->cap, sizeof(cc_slot));
    p->buf = malloc((size_t)p->cap * (CCRAMFS_BLOCK_SIZE + p->out_cap));
    if (!p->slots || !p->buf) goto nomem;
    for (uint32_t k = 0; k < p->cap; k++) {
        p->slots[k].in = p->buf + (size_t)k * (CCRAMFS_BLOCK_SIZE + p->out_cap);
        p->slots[k].out = p->slots[k].in + CCRAMFS_BLOCK_SIZE;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) goto nomem;
    p->mu_ok = 1;
    if (pthread_cond_init(&p->work_cv, NULL) != 0) goto nomem;
    p->work_ok = 1;
    if (pthread_cond_init(&p->done_cv, NULL) != 0) goto nomem;
    p->done_ok = 1;
#ifdef CCRAMFS_FAULT_INJECTION
    const char *fs = getenv("CCRAMFS_FAULT_BLOCK");
    p->fail_seq = fs ? strtoull(fs, NULL, 10) : 0;
#endif

    /* Workers run with every signal blocked, so signals go to the caller's threads. */
    pthread_attr_t attr;
    int attr_ok = pthread_attr_init(&attr) == 0;
    if (attr_ok) (void)pthread_attr_setstacksize(&attr, CC_WORKER_STACK);
    sigset_t all, old;
    sigfillset(&all);
    int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    for (uint32_t k = 0; k < threads; k++) {
        if (pthread_create(&p->workers[k].thread, attr_ok ? &attr : NULL, cc_worker_main,
                           &p->workers[k]) != 0)
            break;
        p->nthreads++;
    }
    if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (attr_ok) pthread_attr_destroy(&attr);
    if (p->nthreads == 0) {
        cc_pool_free(p);
        return CCRAMFS_OK;
    }
    *out = p;
    return CCRAMFS_OK;
nomem:
    cc_pool_free(p);
    cc_msg(w->err, w->errlen, "out of memory");
    return CCRAMFS_ERR_NO_MEMORY;
}

/* Consumer side of a threaded pass: where the next retired block belongs. */
typedef struct cc_retire_state {
    uint32_t k;        /* index into w->order of the current file */
    uint64_t bidx;     /* data-order index of the current file's first block */
    cc_file_state f;   /* valid when f.b < f.nb, i.e. between begin and end */
    int in_file;
} cc_retire_state;

/* Retires the slot at head (done): the same steps as cc_file_data's, in the same order. */
static ccramfs_status cc_retire_one(cc_writer *w, cc_retire_state *r, int mode) {
    cc_pool *p = w->pool;
    cc_slot *s = &p->slots[p->head % p->cap];
    ccramfs_status st;
    if (!r->in_file) {
        if ((st = cc_file_begin(w, &r->f, w->order[r->k], mode, r->bidx))) return st;
        r->in_file = 1;
    }
    if (s->failed) return cc_zlib_failed(w);
    if ((st = cc_file_block(w, &r->f, mode, s->out, s->clen))) return st;
    s->done = 0; /* retired: no worker touches it before it is published again */
    p->head++;
    if (r->f.b == r->f.nb) {
        if ((st = cc_file_end(w, &r->f, mode))) return st;
        r->bidx += r->f.nb;
        r->k++;
        r->in_file = 0;
    }
    return CCRAMFS_OK;
}

/* Sleeps until slot `seq` (published) is compressed. Caller holds mu. */
static void cc_wait_locked(cc_pool *p, uint64_t seq) {
    while (!p->slots[seq % p->cap].done) {
        p->waiting = 1;
        p->wait_seq = seq;
        pthread_cond_wait(&p->done_cv, &p->mu);
    }
    p->waiting = 0;
}

/* Number of consecutive compressed slots from head. Caller holds mu. */
static uint64_t cc_done_locked(const cc_pool *p) {
    uint64_t n = 0;
    while (p->head + n < p->tail && p->slots[(p->head + n) % p->cap].done) n++;
    return n;
}

static ccramfs_status cc_retire_n(cc_writer *w, cc_retire_state *r, int mode, uint64_t n) {
    for (uint64_t k = 0; k < n; k++) {
        ccramfs_status st = cc_retire_one(w, r, mode);
        if (st) return st;
    }
    return CCRAMFS_OK;
}

/*
 * Threaded pass: reads on this thread in the usual order, compresses on the workers. When the
 * ring is full, the calling thread sleeps until half of it is compressed (not just the oldest
 * slot), so it wakes once per cap/2 blocks while the other half keeps the workers busy.
 */
static ccramfs_status cc_data_pass_threaded(cc_writer *w, int mode) {
    cc_pool *p = w->pool;
    cc_retire_state r;
    memset(&r, 0, sizeof r);
    ccramfs_status st;
    uint64_t n;
    for (uint32_t k = 0; k < w->norder; k++) {
        uint32_t i = w->order[k];
        uint32_t size = w->t->nodes[i].size;
        for (uint64_t poff = 0; poff < size; poff += CCRAMFS_BLOCK_SIZE) {
            size_t len = size - poff < CCRAMFS_BLOCK_SIZE ? (size_t)(size - poff) : CCRAMFS_BLOCK_SIZE;
            if (p->tail - p->head == p->cap) {
                pthread_mutex_lock(&p->mu);
                cc_wait_locked(p, p->head + p->cap / 2 - 1);
                cc_wait_locked(p, p->head);
                n = cc_done_locked(p);
                pthread_mutex_unlock(&p->mu);
                if ((st = cc_retire_n(w, &r, mode, n))) return st;
            }
            cc_slot *s = &p->slots[p->tail % p->cap];
            if ((st = cc_get_page(w, i, poff, s->in, len))) return st;
            s->len = (uint32_t)len;
            pthread_mutex_lock(&p->mu);
            p->tail++;
            pthread_cond_signal(&p->work_cv);
            n = cc_done_locked(p);
            pthread_mutex_unlock(&p->mu);
            if ((st = cc_retire_n(w, &r, mode, n))) return st;
        }
    }
    while (p->head < p->tail) {
        pthread_mutex_lock(&p->mu);
        cc_wait_locked(p, p->tail - 1);
        cc_wait_locked(p, p->head);
        n = cc_done_locked(p);
        pthread_mutex_unlock(&p->mu);
        if ((st = cc_retire_n(w, &r, mode, n))) return st;
    }
    return CCRAMFS_OK;
}

static ccramfs_status cc_data_pass(cc_writer *w, int mode) {
    w->cur = w->meta_size;
    w->crc_data = (uint32_t)crc32(0L, Z_NULL, 0);
    w->in_bytes = 0;
    if (w->pool) return cc_data_pass_threaded(w, mode);
    uint64_t bidx = 0;
    for (uint32_t k = 0; k < w->norder; k++) {
        ccramfs_status st = cc_file_data(w, w->order[k], mode, &bidx);
        if (st) return st;
    }
    return CCRAMFS_OK;
}

/* Zero padding after the data up to a multiple of 4096; returns the image size. */
static ccramfs_status cc_tail(cc_writer *w, int emit, uint64_t *image_size) {
    uint64_t end = w->cur;
    uint64_t size = (end + CCRAMFS_BLOCK_SIZE - 1) & ~(uint64_t)(CCRAMFS_BLOCK_SIZE - 1);
    size_t tail = (size_t)(size - end);
    if (tail) {
        ccramfs_status st;
        if (emit && (st = cc_emit(w, end, cc_zeros, tail))) return st;
        uint32_t crc_t = (uint32_t)crc32(crc32(0L, Z_NULL, 0), cc_zeros, (uInt)tail);
        w->crc_data = (uint32_t)crc32_combine(w->crc_data, crc_t, (z_off_t)tail);
    }
    *image_size = size;
    return CCRAMFS_OK;
}

static void cc_put_inode(uint8_t *p, uint32_t mode, uint32_t uid, uint32_t size, uint32_t gid,
                         uint32_t namelen4, uint32_t offset) {
    cc_put32(p, (mode & 0xFFFFu) | (uid << 16));
    cc_put32(p + 4, (size & 0xFFFFFFu) | (gid << 24));
    cc_put32(p + 8, (namelen4 & 0x3Fu) | ((offset >> 2) << 6));
}

static void cc_fill_metadata(cc_writer *w, const ccramfs_write_options *o, uint64_t image_size) {
    uint8_t *m = w->meta;
    memset(m, 0, w->meta_size);
    for (uint32_t i = 1; i < w->n; i++) {
        const cc_tnode *nd = &w->t->nodes[i];
        uint32_t ty = cc_type(nd->mode), offset = 0, size = nd->size;
        if (ty == CCRAMFS_S_IFDIR) {
            size = w->dir_size[i];
            offset = size ? w->child_off[i] : 0;
        } else if (cc_has_data(w, i)) {
            offset = w->data_off[w->owner[i]];
        }
        uint8_t *p = m + w->ipos[i];
        uint32_t nl = (uint32_t)cc_pad4(nd->name_len);
        cc_put_inode(p, nd->mode, nd->uid, size, nd->gid, nl / 4u, offset);
        memcpy(p + CRAMFS_INODE_SIZE, cc_tname(w->t, i), nd->name_len);
    }
    cc_put32(m + 0, CRAMFS_MAGIC);
    cc_put32(m + 4, (uint32_t)image_size);
    cc_put32(m + 8, CRAMFS_FLAG_FSID_VERSION_2 | CRAMFS_FLAG_SORTED_DIRS);
    cc_put32(m + 12, 0);
    memcpy(m + 16, CRAMFS_SIGNATURE, 16);
    cc_put32(m + 32, 0); /* crc, filled in later */
    cc_put32(m + 36, o->edition);
    cc_put32(m + 40, w->blocks);
    cc_put32(m + 44, w->n);
    if (o->volume_name)
        memcpy(m + 48, o->volume_name, o->volume_name_len);
    else
        memcpy(m + 48, "Compressed", 10);
    const cc_tnode *r = &w->t->nodes[0];
    cc_put_inode(m + CRAMFS_ROOT_INODE_OFFSET, r->mode, r->uid, w->dir_size[0], r->gid, 0,
                 CRAMFS_SUPER_SIZE);
}

static void cc_writer_free(cc_writer *w) {
    free(w->kid_start);
    free(w->kids);
    free(w->dir_size);
    free(w->ipos);
    free(w->child_off);
    free(w->owner);
    free(w->data_off);
    free(w->order);
    free(w->stack);
    free(w->meta);
    free(w->bsizes);
    cc_pool_free(w->pool);
    if (w->zs_ok) deflateEnd(&w->zs);
    free(w);
}

ccramfs_status ccramfs_write(const ccramfs_tree *tree, const ccramfs_write_options *options,
                             ccramfs_read_fn read_data, void *read_ctx, ccramfs_output_fn output,
                             void *output_ctx, ccramfs_write_result *result, char *err,
                             size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!tree || !output) {
        cc_msg(err, errlen, "tree and output callback are required");
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    ccramfs_write_options o;
    memset(&o, 0, sizeof o);
    if (options) o = *options;
    if (o.flags & ~(CCRAMFS_WRITE_SEQUENTIAL | CCRAMFS_WRITE_DEDUPLICATE)) {
        cc_msg(err, errlen, "unknown write flags 0x%x", o.flags);
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    if (o.compression_level < 0 || o.compression_level > 9) {
        cc_msg(err, errlen, "compression level %d is not 0...9", o.compression_level);
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    if (o.volume_name && o.volume_name_len > 16) {
        cc_msg(err, errlen, "volume name is %zu bytes; the superblock holds 16", o.volume_name_len);
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    if (o.threads > CCRAMFS_MAX_WRITE_THREADS) {
        cc_msg(err, errlen, "%u threads requested; at most %u", o.threads, CCRAMFS_MAX_WRITE_THREADS);
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }

    cc_writer *w = calloc(1, sizeof *w);
    if (!w) {
        cc_msg(err, errlen, "out of memory");
        return CCRAMFS_ERR_NO_MEMORY;
    }
    w->t = tree;
    w->n = tree->count;
    w->rd = read_data;
    w->rctx = read_ctx;
    w->out = output;
    w->octx = output_ctx;
    w->err = err;
    w->errlen = errlen;
    ccramfs_status st;
    uint32_t n = w->n;
    uint32_t *pre = NULL;

    w->level = o.compression_level ? o.compression_level : Z_DEFAULT_COMPRESSION;
    if (o.threads <= 1) {
        if (deflateInit(&w->zs, w->level) != Z_OK) {
            cc_msg(err, errlen, "zlib deflateInit failed");
            st = CCRAMFS_ERR_ZLIB;
            goto out;
        }
        w->zs_ok = 1;
    }

    w->dir_size = calloc(n, sizeof(uint32_t));
    w->ipos = calloc(n, sizeof(uint32_t));
    w->child_off = calloc(n, sizeof(uint32_t));
    w->owner = malloc((size_t)n * sizeof(uint32_t));
    w->data_off = calloc(n, sizeof(uint32_t));
    w->order = malloc((size_t)n * sizeof(uint32_t));
    w->stack = malloc((size_t)n * sizeof(cc_frame));
    pre = malloc((size_t)n * sizeof(uint32_t));
    if (!w->dir_size || !w->ipos || !w->child_off || !w->owner || !w->data_off || !w->order ||
        !w->stack || !pre) {
        cc_msg(err, errlen, "out of memory");
        st = CCRAMFS_ERR_NO_MEMORY;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) w->owner[i] = CC_NONE;

    if ((st = cc_build_children(w))) goto out;
    if ((st = cc_layout_metadata(w))) goto out;

    uint32_t npre = cc_data_preorder(w, pre);
    for (uint32_t k = 0; k < npre; k++) {
        if (cc_type(tree->nodes[pre[k]].mode) == CCRAMFS_S_IFREG && !read_data) {
            cc_msg(err, errlen, "the tree has regular files but no read callback was given");
            st = CCRAMFS_ERR_INVALID_ARGUMENT;
            goto out;
        }
    }
    if ((st = cc_share_cookies(w, pre, npre))) goto out;
    if ((o.flags & CCRAMFS_WRITE_DEDUPLICATE) && (st = cc_share_content(w, pre, npre))) goto out;
    for (uint32_t k = 0; k < npre; k++) w->owner[pre[k]] = w->owner[w->owner[pre[k]]];
    uint64_t total_blocks = 0;
    for (uint32_t k = 0; k < npre; k++) {
        uint32_t i = pre[k];
        if (w->owner[i] == i) {
            w->order[w->norder++] = i;
            total_blocks += (tree->nodes[i].size + CCRAMFS_BLOCK_SIZE - 1) / CCRAMFS_BLOCK_SIZE;
        } else {
            w->shared++;
        }
    }
    if (total_blocks > UINT32_MAX / 2) {
        cc_msg(err, errlen, "too much file data for cramfs");
        st = CCRAMFS_ERR_IMAGE_TOO_LARGE;
        goto out;
    }
    w->blocks = (uint32_t)total_blocks;

    w->meta = malloc(w->meta_size);
    if (!w->meta) {
        cc_msg(err, errlen, "out of memory");
        st = CCRAMFS_ERR_NO_MEMORY;
        goto out;
    }

    if (o.threads > 1 && total_blocks > 0) {
        uint32_t nt = o.threads;
        if (total_blocks < nt) nt = (uint32_t)total_blocks;
        if ((st = cc_pool_new(w, nt, &w->pool))) goto out;
    }
    if (!w->pool && !w->zs_ok) { /* no block, or no thread could be started */
        if (deflateInit(&w->zs, w->level) != Z_OK) {
            cc_msg(err, errlen, "zlib deflateInit failed");
            st = CCRAMFS_ERR_ZLIB;
            goto out;
        }
        w->zs_ok = 1;
    }

    uint64_t image_size = 0;
    if (o.flags & CCRAMFS_WRITE_SEQUENTIAL) {
        w->bsizes = malloc((size_t)(total_blocks ? total_blocks : 1) * sizeof(uint16_t));
        if (!w->bsizes) {
            cc_msg(err, errlen, "out of memory");
            st = CCRAMFS_ERR_NO_MEMORY;
            goto out;
        }
        if ((st = cc_data_pass(w, CC_MEASURE))) goto out;
        if ((st = cc_tail(w, 0, &image_size))) goto out;
        uint32_t crc_first = w->crc_data;
        cc_fill_metadata(w, &o, image_size);
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), w->meta, w->meta_size);
        crc = (uint32_t)crc32_combine(crc, crc_first, (z_off_t)(image_size - w->meta_size));
        cc_put32(w->meta + CRAMFS_CRC_OFFSET, crc);
        if ((st = cc_emit(w, 0, w->meta, w->meta_size))) goto out;
        if ((st = cc_data_pass(w, CC_EMIT_SEQUENTIAL))) goto out;
        uint64_t size2;
        if ((st = cc_tail(w, 1, &size2))) goto out;
        if (size2 != image_size || w->crc_data != crc_first) {
            cc_msg(err, errlen, "file content changed between the two passes");
            st = CCRAMFS_ERR_INPUT_CHANGED;
            goto out;
        }
    } else {
        if ((st = cc_data_pass(w, CC_POSITIONAL))) goto out;
        if ((st = cc_tail(w, 1, &image_size))) goto out;
        cc_fill_metadata(w, &o, image_size);
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), w->meta, w->meta_size);
        crc = (uint32_t)crc32_combine(crc, w->crc_data, (z_off_t)(image_size - w->meta_size));
        cc_put32(w->meta + CRAMFS_CRC_OFFSET, crc);
        if ((st = cc_emit(w, 0, w->meta, w->meta_size))) goto out;
    }
    if (image_size > UINT32_MAX) {
        cc_msg(err, errlen, "image too large");
        st = CCRAMFS_ERR_IMAGE_TOO_LARGE;
        goto out;
    }
    if (result) {
        result->image_size = image_size;
        result->metadata_size = w->meta_size;
        result->input_bytes = w->in_bytes;
        result->crc = cc_get32(w->meta + CRAMFS_CRC_OFFSET);
        result->files = n;
        result->blocks = w->blocks;
        result->shared = w->shared;
    }
    st = CCRAMFS_OK;
out:
    free(pre);
    cc_writer_free(w);
    return st;
}
