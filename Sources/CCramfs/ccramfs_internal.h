/* Internal helpers shared by the CCramfs sources (not part of the public API). */
#ifndef CCRAMFS_INTERNAL_H
#define CCRAMFS_INTERNAL_H

#include "ccramfs.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CRAMFS_MAGIC 0x28cd3d45u
#define CRAMFS_MAGIC_SWAPPED 0x453dcd28u
#define CRAMFS_SIGNATURE "Compressed ROMFS"
#define CRAMFS_SUPER_SIZE 76u
#define CRAMFS_INODE_SIZE 12u
#define CRAMFS_ROOT_INODE_OFFSET 64u /* root inode inside the superblock */
#define CRAMFS_CRC_OFFSET 32u        /* fsid.crc inside the superblock */
#define CRAMFS_PAD_SIZE 512u         /* optional boot-code padding before the superblock */

#define CRAMFS_FLAG_FSID_VERSION_2 0x00000001u
#define CRAMFS_FLAG_SORTED_DIRS 0x00000002u
#define CRAMFS_FLAG_HOLES 0x00000100u
#define CRAMFS_FLAG_WRONG_SIGNATURE 0x00000200u
#define CRAMFS_FLAG_SHIFTED_ROOT_OFFSET 0x00000400u
#define CRAMFS_SUPPORTED_FLAGS                                                                     \
    (0x000000ffu | CRAMFS_FLAG_HOLES | CRAMFS_FLAG_WRONG_SIGNATURE | CRAMFS_FLAG_SHIFTED_ROOT_OFFSET)

/* The kernel rejects compressed blocks larger than two pages. */
#define CRAMFS_MAX_COMPRESSED_BLOCK (2u * CCRAMFS_BLOCK_SIZE)

static inline uint32_t cc_get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void cc_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t cc_type(uint32_t mode) { return mode & CCRAMFS_S_IFMT; }

static inline uint64_t cc_pad4(uint64_t n) { return (n + 3u) & ~(uint64_t)3u; }

/* Formats a message into buf (always NUL-terminated when len > 0). */
__attribute__((format(printf, 3, 4))) static inline void cc_msg(char *buf, size_t len,
                                                                 const char *fmt, ...) {
    if (!buf || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* Name rules shared by writer and reader: 1...252 bytes, no '/', no NUL, not "." or "..". */
static inline int cc_name_ok(const char *name, size_t len) {
    if (len == 0 || len > CCRAMFS_MAX_NAME_LEN) return 0;
    if (memchr(name, '/', len) || memchr(name, '\0', len)) return 0;
    if (len == 1 && name[0] == '.') return 0;
    if (len == 2 && name[0] == '.' && name[1] == '.') return 0;
    return 1;
}

/* Byte-wise name order (strcmp order for names without NUL), as mkfs.cramfs sorts. */
static inline int cc_name_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    if (c) return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* ---- tree representation (shared by ccramfs_tree.c and ccramfs_write.c) ---- */

typedef struct cc_tnode {
    uint32_t parent;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t size;     /* regular: bytes; symlink: target length; device: rdev; otherwise 0 */
    uint32_t name_len;
    uint64_t cookie;   /* regular files */
    size_t name_off;   /* into arena */
    size_t link_off;   /* into arena (symlinks) */
} cc_tnode;

struct ccramfs_tree {
    cc_tnode *nodes;
    uint32_t count;
    uint32_t cap;
    char *arena; /* names and symlink targets */
    size_t arena_len;
    size_t arena_cap;
    uint32_t *slots; /* open-addressing hash of (parent, name) -> node index; 0 = empty */
    size_t slot_cap;
    char err[512];
};

static inline const char *cc_tname(const ccramfs_tree *t, uint32_t i) {
    return t->arena + t->nodes[i].name_off;
}

/* "/a/b/name": path of `name` under node `parent`, or of node `parent` itself if name is NULL. */
void cc_tree_path(const ccramfs_tree *t, uint32_t parent, const char *name, size_t name_len,
                  char *buf, size_t buflen);

#endif
