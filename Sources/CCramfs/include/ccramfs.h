/*
 * ccramfs.h - cramfs (Linux "compressed ROM filesystem") writer and reader.
 *
 * Plain C99 + zlib, no global state: every function works on the objects passed to it, so
 * distinct trees/readers may be used from distinct threads (one object is not thread-safe).
 *
 * On-disk format (little-endian, 4096-byte blocks, as produced by util-linux mkfs.cramfs):
 *   superblock (76 bytes: magic 0x28cd3d45, size, flags FSID_VERSION_2|SORTED_DIRS, future,
 *   "Compressed ROMFS", fsid {crc, edition, blocks, files}, name[16], root inode), then every
 *   directory's entries (12-byte inode + name padded to 4 bytes, sorted by name), then file data
 *   (per file: one u32 end pointer per 4 KiB block, then the zlib-compressed blocks, padded to 4
 *   bytes), then zero padding to a multiple of 4096. fsid.crc = CRC-32 of the whole image with
 *   the crc field zeroed.
 *
 * WRITER
 *   1. ccramfs_tree_new(); ccramfs_tree_set_root(); ccramfs_tree_add()/ccramfs_tree_add_hardlink()
 *      for every entry (parents before children; the root is index CCRAMFS_ROOT). Every field is
 *      checked against the cramfs limits when the entry is added.
 *   2. ccramfs_write(): sorts directories, lays out the metadata in memory, pulls regular-file
 *      content through the read callback one 4 KiB page at a time, compresses each page and
 *      pushes the image through the output callback. Memory: the metadata image (12 bytes +
 *      padded name per entry), ~40 bytes of bookkeeping per entry and ~50 KiB of buffers (plus
 *      2 bytes per data block with CCRAMFS_WRITE_SEQUENTIAL, plus ~400 KiB per compression
 *      thread when options.threads > 1); file data is never held beyond one 4 KiB page (per
 *      in-flight block with threads). Same tree + same content + same options -> identical bytes.
 *      The image is byte-identical to what mkfs.cramfs (util-linux 2.38, same zlib) makes from
 *      the same tree staged on disk: with default options when no two files/symlinks other than
 *      hard links have identical content, and with CCRAMFS_WRITE_DEDUPLICATE when identical
 *      content always comes with identical mode/uid/gid (mkfs.cramfs shares identical content
 *      regardless of attributes, which makes the kernel merge those inodes; we do not).
 *
 * READER (for untrusted images)
 *   ccramfs_open_memory()/ccramfs_open_callback() check the superblock and the CRC; then
 *   ccramfs_root(), ccramfs_readdir(), ccramfs_lookup(), ccramfs_read(), ccramfs_readlink(),
 *   ccramfs_walk(). Every offset, size, name and block pointer is bounds-checked against the
 *   image; the walk refuses loops/overlapping directories or data (each byte of metadata and
 *   data is claimed at most once, so the work is linear in the image size), depth >
 *   CCRAMFS_MAX_DEPTH, paths > CCRAMFS_MAX_PATH and more than CCRAMFS_MAX_WALK_ENTRIES inodes.
 *   Nothing is allocated from sizes read out of the image: open takes ~70 KiB; a walk adds
 *   image_size/32 bytes (visited bitmap), ~150 KiB of frames and, with VERIFY_DATA, 8-32 bytes
 *   per distinct data region. Errors are status codes plus a message (ccramfs_reader_error()).
 */
#ifndef CCRAMFS_H
#define CCRAMFS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * API version of this header/library (CCRAMFS_API_VERSION). 2: ccramfs_write_options gained
 * `threads` (the struct grew: callers built against version 1 must be rebuilt).
 */
#define CCRAMFS_API_VERSION 2
int ccramfs_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Status codes                                                                                */

typedef enum ccramfs_status {
    CCRAMFS_OK = 0,
    CCRAMFS_DONE = 1,                    /* ccramfs_readdir: no more entries (not an error) */
    /* usage / writer */
    CCRAMFS_ERR_INVALID_ARGUMENT = 2,    /* NULL pointer, bad index, bad option value */
    CCRAMFS_ERR_NO_MEMORY = 3,
    CCRAMFS_ERR_BAD_NAME = 4,            /* empty, "." "..", contains '/' or NUL, > 252 bytes */
    CCRAMFS_ERR_DUPLICATE_NAME = 5,      /* same name twice in one directory */
    CCRAMFS_ERR_NOT_A_DIRECTORY = 6,     /* parent is not a directory */
    CCRAMFS_ERR_BAD_TYPE = 7,            /* mode has no valid file type; hard link to non-file */
    CCRAMFS_ERR_FILE_TOO_LARGE = 8,      /* regular file >= 16 MiB (size field is 24 bits) */
    CCRAMFS_ERR_DIRECTORY_TOO_LARGE = 9, /* a directory's entries take >= 16 MiB */
    CCRAMFS_ERR_UID_RANGE = 10,          /* uid > 65535 */
    CCRAMFS_ERR_GID_RANGE = 11,          /* gid > 255 */
    CCRAMFS_ERR_DEVICE_RANGE = 12,       /* device major or minor > 255 */
    CCRAMFS_ERR_SYMLINK_TARGET = 13,     /* symlink target empty, > 4095 bytes or has a NUL */
    CCRAMFS_ERR_IMAGE_TOO_LARGE = 14,    /* metadata or a data start offset >= 256 MiB */
    CCRAMFS_ERR_TOO_MANY_ENTRIES = 15,   /* writer: > 16 M entries; walk: > CCRAMFS_MAX_WALK_ENTRIES */
    CCRAMFS_ERR_READ_CALLBACK = 16,      /* the read callback returned nonzero */
    CCRAMFS_ERR_OUTPUT_CALLBACK = 17,    /* the output callback returned nonzero */
    CCRAMFS_ERR_ZLIB = 18,               /* zlib failed to initialise or compress */
    CCRAMFS_ERR_INPUT_CHANGED = 19,      /* two-pass write saw different content the 2nd time */
    CCRAMFS_ERR_INCONSISTENT = 20,       /* same data cookie used with different sizes */
    /* reader */
    CCRAMFS_ERR_TRUNCATED = 21,          /* image shorter than the superblock says */
    CCRAMFS_ERR_BAD_MAGIC = 22,          /* no cramfs superblock at offset 0 or 512 */
    CCRAMFS_ERR_WRONG_ENDIANNESS = 23,   /* big-endian cramfs (not supported) */
    CCRAMFS_ERR_UNSUPPORTED = 24,        /* feature flags this reader (and old kernels) lack */
    CCRAMFS_ERR_CORRUPT = 25,            /* structural error: offset/size/name out of range ... */
    CCRAMFS_ERR_BAD_CRC = 26,
    CCRAMFS_ERR_LOOP = 27,               /* directory loop or overlapping directory entries */
    CCRAMFS_ERR_TOO_DEEP = 28,           /* depth > CCRAMFS_MAX_DEPTH or path > CCRAMFS_MAX_PATH */
    CCRAMFS_ERR_DECOMPRESS = 29,         /* bad zlib stream or wrong decompressed length */
    CCRAMFS_ERR_NOT_FOUND = 30,
    CCRAMFS_ERR_WRONG_TYPE = 31,         /* e.g. readdir on a file, readlink on a directory */
    CCRAMFS_ERR_ABORTED = 32,            /* the walk callback returned nonzero */
    CCRAMFS_ERR_IO = 33                  /* the image read callback returned nonzero */
} ccramfs_status;

/** Constant identifier of a status ("CCRAMFS_ERR_FILE_TOO_LARGE"); never NULL. */
const char *ccramfs_status_name(ccramfs_status status);

/* ------------------------------------------------------------------------------------------ */
/* Limits of the format (as enforced by this library)                                          */

#define CCRAMFS_BLOCK_SIZE 4096u
#define CCRAMFS_MAX_FILE_SIZE 0xFFFFFFu       /* 16 MiB - 1: 24-bit size field */
#define CCRAMFS_MAX_UID 0xFFFFu               /* 16-bit uid */
#define CCRAMFS_MAX_GID 0xFFu                 /* 8-bit gid */
#define CCRAMFS_MAX_NAME_LEN 252u             /* 6-bit name length in 4-byte units */
#define CCRAMFS_MAX_DEV_MAJOR 255u            /* kernel decodes rdev with old_decode_dev() */
#define CCRAMFS_MAX_DEV_MINOR 255u
#define CCRAMFS_MAX_SYMLINK_LEN 4095u         /* one block */
#define CCRAMFS_MAX_DIR_SIZE 0xFFFFFFu        /* bytes of entries of one directory */
#define CCRAMFS_MAX_OFFSET 0x0FFFFFFCu        /* 26-bit offset in 4-byte units: < 256 MiB */
#define CCRAMFS_MAX_DEPTH 256u                /* reader: directory nesting */
#define CCRAMFS_MAX_PATH 4096u                /* reader: bytes of a path given to the walk */
#define CCRAMFS_MAX_WALK_ENTRIES 2097152u     /* reader: inodes visited by one walk */

/* File types (Linux st_mode values); the mode passed in is type | permission bits (07777). */
#define CCRAMFS_S_IFMT 0170000u
#define CCRAMFS_S_IFSOCK 0140000u
#define CCRAMFS_S_IFLNK 0120000u
#define CCRAMFS_S_IFREG 0100000u
#define CCRAMFS_S_IFBLK 0060000u
#define CCRAMFS_S_IFDIR 0040000u
#define CCRAMFS_S_IFCHR 0020000u
#define CCRAMFS_S_IFIFO 0010000u

/* ------------------------------------------------------------------------------------------ */
/* Tree description                                                                            */

typedef struct ccramfs_tree ccramfs_tree;

/** Index of the root directory in every tree. */
#define CCRAMFS_ROOT 0u

/** One entry to add. Zero-initialise, then set what applies to the type. */
typedef struct ccramfs_entry {
    uint32_t mode;             /* CCRAMFS_S_IF* type | permission bits (07777) */
    uint32_t uid;              /* <= 65535 */
    uint32_t gid;              /* <= 255 */
    uint64_t size;             /* regular files: content length (< 16 MiB); else ignored */
    uint32_t dev_major;        /* char/block devices: <= 255 */
    uint32_t dev_minor;        /* char/block devices: <= 255 */
    const char *link_target;   /* symlinks: target bytes (copied; need not be NUL-terminated) */
    size_t link_target_len;    /* symlinks: 1...4095 */
    uint64_t data_cookie;      /* regular files: handed back to the read callback. Files with
                                  the same cookie and the same mode/uid/gid are hard links: they
                                  share one data region (and so one kernel inode number). */
} ccramfs_entry;

/** A new tree holding only the root directory (mode 040755, uid 0, gid 0). NULL if no memory. */
ccramfs_tree *ccramfs_tree_new(void);
void ccramfs_tree_free(ccramfs_tree *tree);

/** Sets the root directory's permission bits (the type bits are ignored), uid and gid. */
ccramfs_status ccramfs_tree_set_root(ccramfs_tree *tree, uint32_t mode, uint32_t uid, uint32_t gid);

/**
 * Adds `name` (name_len bytes, no NUL needed) under directory `parent` and stores the new
 * entry's index in *out_index (may be NULL). Checks every cramfs limit and the name; on failure
 * the tree is unchanged and ccramfs_tree_error() says which path failed and why.
 * Directories must be added before their children; entries may come in any name order.
 */
ccramfs_status ccramfs_tree_add(ccramfs_tree *tree, uint32_t parent, const char *name,
                                size_t name_len, const ccramfs_entry *entry, uint32_t *out_index);

/** Adds a hard link to regular file `target`: same mode/uid/gid/size/cookie, shared data. */
ccramfs_status ccramfs_tree_add_hardlink(ccramfs_tree *tree, uint32_t parent, const char *name,
                                         size_t name_len, uint32_t target, uint32_t *out_index);

/** Index of `name` in directory `parent`, or CCRAMFS_ERR_NOT_FOUND. */
ccramfs_status ccramfs_tree_lookup(const ccramfs_tree *tree, uint32_t parent, const char *name,
                                   size_t name_len, uint32_t *out_index);

/** Number of entries including the root. */
uint32_t ccramfs_tree_count(const ccramfs_tree *tree);

/** Message of the last failed tree call ("" if none). Valid until the next call on the tree. */
const char *ccramfs_tree_error(const ccramfs_tree *tree);

/* ------------------------------------------------------------------------------------------ */
/* Writer                                                                                      */

/**
 * Supplies file content: copy exactly `len` bytes (1...4096) of the regular file identified by
 * `cookie`, starting at byte `offset`, into `buf`. Return 0 on success; any other value fails
 * the write with CCRAMFS_ERR_READ_CALLBACK (the value is quoted in the message).
 * Pages of one file are requested in increasing offset order; with CCRAMFS_WRITE_DEDUPLICATE
 * or CCRAMFS_WRITE_SEQUENTIAL a file may be read more than once.
 */
typedef int (*ccramfs_read_fn)(void *ctx, uint64_t cookie, uint64_t offset, void *buf, size_t len);

/**
 * Receives the image: store `len` bytes at image byte `offset`. Return 0 on success; any other
 * value stops the write with CCRAMFS_ERR_OUTPUT_CALLBACK.
 * Every byte of [0, image_size) is written exactly once. By default the data area is written
 * first (mostly ascending; each file's block-pointer table right after its blocks) and the
 * metadata [0, metadata_size) last, so the sink must support positional writes (pwrite).
 * With CCRAMFS_WRITE_SEQUENTIAL every call continues exactly where the previous one ended.
 */
typedef int (*ccramfs_output_fn)(void *ctx, uint64_t offset, const void *buf, size_t len);

/** Write flags. */
#define CCRAMFS_WRITE_SEQUENTIAL 0x1u   /* strictly sequential output: compresses twice */
#define CCRAMFS_WRITE_DEDUPLICATE 0x2u  /* share data of files/symlinks with equal content and
                                           equal mode/uid/gid (reads such candidates twice) */

/** Largest ccramfs_write_options.threads. */
#define CCRAMFS_MAX_WRITE_THREADS 64u

typedef struct ccramfs_write_options {
    uint32_t flags;               /* CCRAMFS_WRITE_* */
    int compression_level;        /* 1...9; 0 = zlib default (6, what mkfs.cramfs uses) */
    uint32_t edition;             /* fsid.edition (mkfs.cramfs -e); default 0 */
    const char *volume_name;      /* superblock name, <= 16 bytes; NULL = "Compressed" */
    size_t volume_name_len;
    uint32_t threads;             /* (version >= 2) 0 or 1: compress on the calling thread;
                                     2...CCRAMFS_MAX_WRITE_THREADS: that many worker threads
                                     compress the blocks (see ccramfs_write) */
} ccramfs_write_options;

typedef struct ccramfs_write_result {
    uint64_t image_size;          /* bytes written, a multiple of 4096 */
    uint64_t metadata_size;       /* superblock + directory entries */
    uint64_t input_bytes;         /* file/symlink bytes compressed (shared data counted once) */
    uint32_t crc;                 /* fsid.crc */
    uint32_t files;               /* fsid.files: inodes including the root */
    uint32_t blocks;              /* fsid.blocks: data blocks written */
    uint32_t shared;              /* entries whose data is shared with an earlier entry */
} ccramfs_write_result;

/**
 * Writes the cramfs image of `tree`. `options` and `result` may be NULL. On failure returns the
 * status and writes a message to err (errlen bytes, always NUL-terminated if errlen > 0).
 * Output already emitted before a failure is garbage and should be discarded.
 *
 * Threads (options->threads = N > 1): min(N, data blocks) pthreads, started and joined inside
 * this call, compress the blocks (both passes of CCRAMFS_WRITE_SEQUENTIAL; the reads with which
 * CCRAMFS_WRITE_DEDUPLICATE compares content compress nothing and run before). Both callbacks
 * are still called only from the calling thread: the read callback with the same sequence of
 * (cookie, offset, len) and the output callback with the same sequence of (offset, bytes) as
 * with N <= 1, so the image is identical for every N. The reads merely run ahead of the output
 * by up to 16 blocks per worker: when the output callback, zlib or a limit check fails, pages
 * that far beyond the failing block may already have been read (a failing read is still the
 * last read). The workers run with every signal blocked; every error path stops and joins them
 * before returning. Memory per worker: one deflate state (~270 KiB with zlib's defaults) and
 * 16 slots of one page in plus deflateBound(4096) out (~130 KiB). If no thread can be started,
 * the write proceeds on the calling thread. With N <= 1 the write runs exactly as in version 1.
 */
ccramfs_status ccramfs_write(const ccramfs_tree *tree, const ccramfs_write_options *options,
                             ccramfs_read_fn read_data, void *read_ctx,
                             ccramfs_output_fn output, void *output_ctx,
                             ccramfs_write_result *result, char *err, size_t errlen);

/** Ready-made output callback: ctx points to an int file descriptor; uses pwrite(). */
int ccramfs_output_to_fd(void *ctx, uint64_t offset, const void *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Reader                                                                                      */

typedef struct ccramfs_reader ccramfs_reader;

/** Reads exactly `len` bytes at `offset` of the image into buf; 0 on success. */
typedef int (*ccramfs_pread_fn)(void *ctx, uint64_t offset, void *buf, size_t len);

/** Ready-made image read callback: ctx points to an int file descriptor; uses pread(). */
int ccramfs_pread_from_fd(void *ctx, uint64_t offset, void *buf, size_t len);

/** Open flags. */
#define CCRAMFS_OPEN_IGNORE_CRC 0x1u   /* open even if the CRC does not match (info.crc_ok = 0) */

/**
 * Opens an image held in memory (not copied: it must outlive the reader). Checks the
 * superblock, the root inode and (for version-2 images) the CRC.
 */
ccramfs_status ccramfs_open_memory(const void *image, size_t len, uint32_t flags,
                                   ccramfs_reader **out, char *err, size_t errlen);

/** Same, reading the image of `image_len` bytes through a callback. */
ccramfs_status ccramfs_open_callback(uint64_t image_len, ccramfs_pread_fn read_image, void *ctx,
                                     uint32_t flags, ccramfs_reader **out, char *err, size_t errlen);

void ccramfs_close(ccramfs_reader *reader);

/** Message of the last failed reader call ("" if none). */
const char *ccramfs_reader_error(const ccramfs_reader *reader);

typedef struct ccramfs_info {
    uint64_t start;              /* offset of the superblock: 0, or 512 (boot-code padding) */
    uint64_t size;               /* filesystem size from the superblock (0 if not version 2) */
    uint32_t flags;
    uint32_t future;
    uint32_t crc_stored;
    uint32_t crc_computed;
    uint32_t edition;
    uint32_t blocks;
    uint32_t files;
    int fsid_version_2;          /* 1 if CRC/size/blocks/files are meaningful */
    int crc_ok;                  /* 1 if checked and equal */
    int signature_ok;            /* 1 if the signature is "Compressed ROMFS" */
    char name[17];               /* volume name, NUL-terminated */
} ccramfs_info;

ccramfs_status ccramfs_get_info(const ccramfs_reader *reader, ccramfs_info *out);

/** One inode as decoded from the image. */
typedef struct ccramfs_node {
    uint64_t handle;             /* image offset of the 12-byte inode (root: start + 64) */
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t size;               /* raw 24-bit size: bytes (file, symlink, directory) or rdev */
    uint32_t offset;             /* data (file/symlink) or first entry (directory); 0 = none */
    uint32_t dev_major;          /* char/block devices: (size >> 8) & 0xff, as the kernel does */
    uint32_t dev_minor;          /* char/block devices: size & 0xff */
    uint32_t name_len;
    char name[CCRAMFS_MAX_NAME_LEN + 1];   /* NUL-terminated; "" for the root */
} ccramfs_node;

ccramfs_status ccramfs_root(ccramfs_reader *reader, ccramfs_node *out);

/**
 * Iterates a directory in on-disk order. Set *cursor = 0 first; each call returns CCRAMFS_OK
 * and the next entry, then CCRAMFS_DONE. Names are validated (no '/', NUL, "." or "..").
 */
ccramfs_status ccramfs_readdir(ccramfs_reader *reader, const ccramfs_node *dir, uint32_t *cursor,
                               ccramfs_node *out);

/** Finds a path ("/a/b" or "a/b"; "" or "/" is the root). Symlinks are not followed. */
ccramfs_status ccramfs_lookup(ccramfs_reader *reader, const char *path, size_t path_len,
                              ccramfs_node *out);

/**
 * Reads up to `len` bytes of a regular file's (or symlink's) content starting at `offset`;
 * *out_len gets the count (0 at/after the end). Decompresses only the blocks needed.
 */
ccramfs_status ccramfs_read(ccramfs_reader *reader, const ccramfs_node *file, uint64_t offset,
                            void *buf, size_t len, size_t *out_len);

/** Symlink target into buf (NUL-terminated; needs size + 1 bytes). *out_len = target length. */
ccramfs_status ccramfs_readlink(ccramfs_reader *reader, const ccramfs_node *link, char *buf,
                                size_t buflen, size_t *out_len);

/** Walk flags. */
#define CCRAMFS_WALK_VERIFY_DATA 0x1u  /* decompress every file and symlink, check lengths */
#define CCRAMFS_WALK_STRICT 0x2u       /* also: sorted unique names, zero offset for devices/
                                          fifos/sockets/empty files, inode count equal to
                                          fsid.files, directory area directly followed by the
                                          data area (as fsck.cramfs demands) */

/**
 * Called for every inode in depth-first pre-order (root first, path "/", then "/a", "/a/b"
 * ...). `path` is NUL-terminated. Return 0 to continue, nonzero to stop (CCRAMFS_ERR_ABORTED).
 */
typedef int (*ccramfs_walk_fn)(void *ctx, const char *path, size_t path_len,
                               const ccramfs_node *node);

/** Walks the whole tree with loop, depth and path-length protection. fn may be NULL. */
ccramfs_status ccramfs_walk(ccramfs_reader *reader, uint32_t flags, ccramfs_walk_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CCRAMFS_H */
