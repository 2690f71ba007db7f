/*
 * cramfs-tool: a small command-line driver for Sources/CCramfs, used by
 * tools/bench-cramfs-writer and tools/cramfs-asan-check (not part of the package build).
 *
 *   cramfs-tool mkfs [-d] [-s] [-j N] [-n NAME] DIR IMAGE
 *                                                    build IMAGE from DIR (like mkfs.cramfs;
 *                                                    -d dedup content, -s sequential output,
 *                                                    -j N compression threads; for error-path
 *                                                    checks: -R K / -W K fail the K-th read /
 *                                                    output callback, and the reads/outputs
 *                                                    must come from the calling thread)
 *   cramfs-tool ls IMAGE                             list every inode (strict walk, verify data)
 *   cramfs-tool cat IMAGE PATH                       print one file
 *   cramfs-tool fuzz IMAGE ITERATIONS SEED           mutate IMAGE and run the reader on each
 *                                                    variant (for sanitizer builds)
 */
#define _GNU_SOURCE
#include "ccramfs.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---------------- mkfs ---------------- */

typedef struct {
    char **paths;
    size_t count, cap;
    struct {
        dev_t dev;
        ino_t ino;
        uint32_t index;
    } *links;
    size_t nlinks, caplinks;
    int fd;                /* open file of open_cookie */
    uint64_t open_cookie;
    unsigned long reads, fail_read; /* fail_read > 0: the fail_read-th call fails */
    pthread_t caller;      /* every callback must run on this thread */
    int wrong_thread;
} source;

typedef struct {
    int fd;
    unsigned long calls, fail_call;
    source *s;
} sink;

static int read_file_cb(void *ctx, uint64_t cookie, uint64_t offset, void *buf, size_t len) {
    source *s = ctx;
    if (!pthread_equal(pthread_self(), s->caller)) s->wrong_thread = 1;
    if (s->fail_read && ++s->reads == s->fail_read) return 4242;
    if (cookie >= s->count) return EINVAL;
    if (s->open_cookie != cookie) {
        if (s->fd >= 0) close(s->fd);
        s->fd = open(s->paths[cookie], O_RDONLY);
        s->open_cookie = cookie;
        if (s->fd < 0) return errno;
    }
    int fd = s->fd;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(offset + got));
        if (n <= 0) return n < 0 ? errno : EIO;
        got += (size_t)n;
    }
    return 0;
}

static int write_image_cb(void *ctx, uint64_t offset, const void *buf, size_t len) {
    sink *o = ctx;
    if (!pthread_equal(pthread_self(), o->s->caller)) o->s->wrong_thread = 1;
    if (o->fail_call && ++o->calls == o->fail_call) return 4343;
    return ccramfs_output_to_fd(&o->fd, offset, buf, len);
}

static int scan(ccramfs_tree *t, source *s, const char *dir, uint32_t parent) {
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return 1;
    }
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        const char *name = list[k]->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            perror(path);
            rc = 1;
            break;
        }
        ccramfs_entry e;
        memset(&e, 0, sizeof e);
        e.mode = st.st_mode;
        e.uid = st.st_uid;
        e.gid = st.st_gid;
        char target[4097];
        uint32_t idx;
        ccramfs_status r;
        if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
            size_t i;
            for (i = 0; i < s->nlinks; i++)
                if (s->links[i].dev == st.st_dev && s->links[i].ino == st.st_ino) break;
            if (i < s->nlinks) {
                r = ccramfs_tree_add_hardlink(t, parent, name, strlen(name), s->links[i].index, &idx);
                if (r) {
                    fprintf(stderr, "%s: %s\n", ccramfs_status_name(r), ccramfs_tree_error(t));
                    rc = 1;
                }
                continue;
            }
        }
        if (S_ISREG(st.st_mode)) {
            e.size = (uint64_t)st.st_size;
            if (s->count == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 1024;
                s->paths = realloc(s->paths, s->cap * sizeof *s->paths);
            }
            e.data_cookie = s->count;
            s->paths[s->count++] = strdup(path);
        } else if (S_ISLNK(st.st_mode)) {
            ssize_t l = readlink(path, target, sizeof target - 1);
            if (l < 0) {
                perror(path);
                rc = 1;
                break;
            }
            e.link_target = target;
            e.link_target_len = (size_t)l;
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            e.dev_major = major(st.st_rdev);
            e.dev_minor = minor(st.st_rdev);
        }
        r = ccramfs_tree_add(t, parent, name, strlen(name), &e, &idx);
        if (r) {
            fprintf(stderr, "%s: %s\n", ccramfs_status_name(r), ccramfs_tree_error(t));
            rc = 1;
            break;
        }
        if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
            if (s->nlinks == s->caplinks) {
                s->caplinks = s->caplinks ? s->caplinks * 2 : 64;
                s->links = realloc(s->links, s->caplinks * sizeof *s->links);
            }
            s->links[s->nlinks].dev = st.st_dev;
            s->links[s->nlinks].ino = st.st_ino;
            s->links[s->nlinks].index = idx;
            s->nlinks++;
        }
        if (S_ISDIR(st.st_mode)) rc = scan(t, s, path, idx);
    }
    for (int k = 0; k < n; k++) free(list[k]);
    free(list);
    return rc;
}

static int cmd_mkfs(int argc, char **argv) {
    ccramfs_write_options o;
    memset(&o, 0, sizeof o);
    unsigned long fail_read = 0, fail_write = 0;
    int i = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-d")) o.flags |= CCRAMFS_WRITE_DEDUPLICATE;
        else if (!strcmp(argv[i], "-s")) o.flags |= CCRAMFS_WRITE_SEQUENTIAL;
        else if (!strcmp(argv[i], "-j") && i + 1 < argc) o.threads = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-R") && i + 1 < argc) fail_read = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-W") && i + 1 < argc) fail_write = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            o.volume_name = argv[++i];
            o.volume_name_len = strlen(o.volume_name);
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: cramfs-tool mkfs [-d] [-s] [-j N] [-R K] [-W K] [-n NAME] DIR IMAGE\n");
        return 2;
    }
    const char *dir = argv[i], *img = argv[i + 1];
    struct stat st;
    if (stat(dir, &st) != 0) {
        perror(dir);
        return 1;
    }
    ccramfs_tree *t = ccramfs_tree_new();
    ccramfs_tree_set_root(t, st.st_mode, st.st_uid, st.st_gid);
    source s;
    memset(&s, 0, sizeof s);
    s.fd = -1;
    s.open_cookie = UINT64_MAX;
    s.fail_read = fail_read;
    s.caller = pthread_self();
    int rc = 1;
    sink out = {-1, 0, fail_write, &s};
    if (scan(t, &s, dir, CCRAMFS_ROOT)) goto done;
    out.fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out.fd < 0) {
        perror(img);
        goto done;
    }
    char err[1024];
    ccramfs_write_result res;
    ccramfs_status r = ccramfs_write(t, &o, read_file_cb, &s, write_image_cb, &out, &res, err,
                                     sizeof err);
    close(out.fd);
    if (s.wrong_thread) {
        fprintf(stderr, "a callback ran on another thread than the caller's\n");
        rc = 3;
        goto done;
    }
    if (r) {
        fprintf(stderr, "%s: %s\n", ccramfs_status_name(r), err);
        goto done;
    }
    fprintf(stderr, "image %llu bytes, metadata %llu, input %llu, files %u, blocks %u, shared %u, crc 0x%08x\n",
            (unsigned long long)res.image_size, (unsigned long long)res.metadata_size,
            (unsigned long long)res.input_bytes, res.files, res.blocks, res.shared, res.crc);
    rc = 0;
done:
    if (s.fd >= 0) close(s.fd);
    ccramfs_tree_free(t);
    for (size_t k = 0; k < s.count; k++) free(s.paths[k]);
    free(s.paths);
    free(s.links);
    return rc;
}

/* ---------------- reading ---------------- */

static unsigned char *load(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(b);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int print_cb(void *ctx, const char *path, size_t path_len, const ccramfs_node *n) {
    ccramfs_reader *r = ctx;
    (void)path_len;
    char extra[4200] = "";
    if ((n->mode & CCRAMFS_S_IFMT) == CCRAMFS_S_IFLNK) {
        char t[4096];
        if (ccramfs_readlink(r, n, t, sizeof t, NULL) == CCRAMFS_OK) snprintf(extra, sizeof extra, " -> %s", t);
    }
    printf("%06o %5u %3u %8u %s%s\n", n->mode, n->uid, n->gid, n->size, path, extra);
    return 0;
}

/* Loads IMG and opens a reader on it; on failure reports and returns NULL (nothing to free). */
static ccramfs_reader *open_image(const char *img, unsigned char **bytes) {
    size_t len;
    unsigned char *b = load(img, &len);
    if (!b) return NULL;
    ccramfs_reader *r;
    char err[1024];
    ccramfs_status st = ccramfs_open_memory(b, len, 0, &r, err, sizeof err);
    if (st) {
        fprintf(stderr, "%s: %s\n", ccramfs_status_name(st), err);
        free(b);
        return NULL;
    }
    *bytes = b;
    return r;
}

static int cmd_ls(const char *img) {
    unsigned char *b;
    ccramfs_reader *r = open_image(img, &b);
    if (!r) return 1;
    ccramfs_status st = ccramfs_walk(r, CCRAMFS_WALK_VERIFY_DATA | CCRAMFS_WALK_STRICT, print_cb, r);
    if (st) fprintf(stderr, "%s: %s\n", ccramfs_status_name(st), ccramfs_reader_error(r));
    ccramfs_close(r);
    free(b);
    return st ? 1 : 0;
}

static int cmd_cat(const char *img, const char *path) {
    unsigned char *b;
    ccramfs_reader *r = open_image(img, &b);
    if (!r) return 1;
    ccramfs_node n;
    ccramfs_status st = ccramfs_lookup(r, path, strlen(path), &n);
    char buf[10000];
    uint64_t off = 0;
    while (!st) {
        size_t got;
        st = ccramfs_read(r, &n, off, buf, sizeof buf, &got);
        if (st || got == 0) break;
        fwrite(buf, 1, got, stdout);
        off += got;
    }
    if (st) fprintf(stderr, "%s: %s\n", ccramfs_status_name(st), ccramfs_reader_error(r));
    ccramfs_close(r);
    free(b);
    return st ? 1 : 0;
}

/* ---------------- fuzz ---------------- */

static uint64_t rng_state;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int count_cb(void *ctx, const char *path, size_t path_len, const ccramfs_node *n) {
    (void)path;
    (void)path_len;
    (void)n;
    ++*(unsigned long *)ctx;
    return 0;
}

typedef struct {
    const unsigned char *b;
    size_t len;
} memsrc;

static int pread_mem(void *ctx, uint64_t off, void *buf, size_t len) {
    memsrc *m = ctx;
    if (off > m->len || len > m->len - off) return EIO;
    memcpy(buf, m->b + off, len);
    return 0;
}

/* Runs the whole reader API over one (possibly hostile) image; returns the status. */
static ccramfs_status exercise(const unsigned char *b, size_t len, int use_callback,
                               unsigned long *entries) {
    ccramfs_reader *r;
    char err[512];
    memsrc m = {b, len};
    ccramfs_status st = use_callback
                            ? ccramfs_open_callback(len, pread_mem, &m, CCRAMFS_OPEN_IGNORE_CRC, &r, err, sizeof err)
                            : ccramfs_open_memory(b, len, CCRAMFS_OPEN_IGNORE_CRC, &r, err, sizeof err);
    if (st) return st;
    ccramfs_info info;
    ccramfs_get_info(r, &info);
    st = ccramfs_walk(r, CCRAMFS_WALK_VERIFY_DATA | (use_callback ? 0 : CCRAMFS_WALK_STRICT),
                      count_cb, entries);
    if (!use_callback) ccramfs_walk(r, 0, NULL, NULL);
    /* Random-access API on whatever the root holds, even if the walk failed. */
    ccramfs_node root, e;
    ccramfs_root(r, &root);
    uint32_t cur = 0;
    int guard = 0;
    while (guard++ < 64 && ccramfs_readdir(r, &root, &cur, &e) == CCRAMFS_OK) {
        char buf[5000];
        size_t got;
        ccramfs_read(r, &e, 0, buf, sizeof buf, &got);
        ccramfs_read(r, &e, 4000, buf, 300, &got);
        ccramfs_readlink(r, &e, buf, sizeof buf, &got);
        ccramfs_node sub;
        uint32_t c2 = 0;
        if (ccramfs_readdir(r, &e, &c2, &sub) == CCRAMFS_OK) ccramfs_read(r, &sub, 0, buf, 100, &got);
        char path[300];
        snprintf(path, sizeof path, "/%s", e.name);
        ccramfs_lookup(r, path, strlen(path), &sub);
    }
    ccramfs_close(r);
    return st;
}

static int cmd_fuzz(const char *img, long iters, unsigned long seed) {
    size_t len;
    unsigned char *orig = load(img, &len);
    if (!orig) return 1;
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    unsigned long entries = 0;
    ccramfs_status st = exercise(orig, len, 0, &entries);
    if (st != CCRAMFS_OK) {
        fprintf(stderr, "base image does not read: %s\n", ccramfs_status_name(st));
        return 1;
    }
    printf("base image: %zu bytes, %lu entries\n", len, entries);
    unsigned long counts[64] = {0};
    struct timespec t0, t1;
    double worst = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* 1. every truncation length up to 8 KiB, then a spread of larger ones */
    for (size_t cut = 0; cut < len; cut += (cut < 8192 ? 1 : 997)) {
        unsigned char *b = malloc(cut ? cut : 1);
        memcpy(b, orig, cut);
        st = exercise(b, cut, cut & 1, &entries);
        counts[st < 64 ? st : 63]++;
        free(b);
    }
    /* 2. random mutations */
    unsigned char *b = malloc(len);
    for (long it = 0; it < iters; it++) {
        struct timespec a, z;
        clock_gettime(CLOCK_MONOTONIC, &a);
        memcpy(b, orig, len);
        size_t use = len;
        int kind = (int)(rnd() % 6);
        int nmut = 1 + (int)(rnd() % 8);
        for (int k = 0; k < nmut; k++) {
            size_t pos;
            switch (kind) {
            case 0: /* bit flips anywhere */
                pos = rnd() % len;
                b[pos] ^= (unsigned char)(1u << (rnd() % 8));
                break;
            case 1: /* bytes in the metadata (first 4 KiB) */
                pos = rnd() % (len < 4096 ? len : 4096);
                b[pos] = (unsigned char)rnd();
                break;
            case 2: { /* 32-bit words with interesting values in the metadata */
                static const uint32_t vals[] = {0, 1, 0xFFFFFFFFu, 0x7FFFFFFFu, 0x80000000u, 76, 64, 0xFFFFFFu, 0x40u, 0x3Fu};
                pos = (rnd() % ((len < 4096 ? len : 4096) / 4)) * 4;
                uint32_t v = vals[rnd() % (sizeof vals / sizeof vals[0])];
                if (rnd() & 1) v = (uint32_t)rnd();
                memcpy(b + pos, &v, 4);
                break;
            }
            case 3: /* copy an inode over another (loops, shared offsets) */ {
                size_t meta = len < 4096 ? len : 4096;
                size_t from = 76 + (rnd() % (meta / 4)) * 4, to = 76 + (rnd() % (meta / 4)) * 4;
                if (from + 12 <= len && to + 12 <= len) memmove(b + to, b + from, 12);
                break;
            }
            case 4: /* random garbage block */
                pos = rnd() % len;
                for (size_t q = pos; q < len && q < pos + 64; q++) b[q] = (unsigned char)rnd();
                break;
            case 5: /* truncate + mutate */
                use = rnd() % len;
                pos = rnd() % (use ? use : 1);
                if (use) b[pos] ^= 0xFF;
                break;
            }
        }
        st = exercise(b, use, (int)(it & 1), &entries);
        counts[st < 64 ? st : 63]++;
        clock_gettime(CLOCK_MONOTONIC, &z);
        double dt = (double)(z.tv_sec - a.tv_sec) + (double)(z.tv_nsec - a.tv_nsec) / 1e9;
        if (dt > worst) worst = dt;
    }
    /* 3. pure random images with a valid magic (and without) */
    for (int it = 0; it < 2000; it++) {
        size_t l = 76 + rnd() % 20000;
        unsigned char *x = malloc(l);
        for (size_t q = 0; q < l; q++) x[q] = (unsigned char)rnd();
        if (it & 1) {
            uint32_t v = 0x28cd3d45u;
            memcpy(x, &v, 4);
            v = 3;
            memcpy(x + 8, &v, 4);
            v = (uint32_t)l;
            memcpy(x + 4, &v, 4);
            uint32_t mode = 040755u;
            memcpy(x + 64, &mode, 2);
        }
        st = exercise(x, l, it & 2, &entries);
        counts[st < 64 ? st : 63]++;
        free(x);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(b);
    free(orig);
    printf("done in %.2f s, slowest mutated image %.4f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, worst);
    for (int k = 0; k < 64; k++)
        if (counts[k]) printf("  %-32s %lu\n", ccramfs_status_name((ccramfs_status)k), counts[k]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "mkfs")) return cmd_mkfs(argc - 2, argv + 2);
    if (argc == 3 && !strcmp(argv[1], "ls")) return cmd_ls(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "cat")) return cmd_cat(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "fuzz"))
        return cmd_fuzz(argv[2], strtol(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
    fprintf(stderr, "usage: cramfs-tool mkfs|ls|cat|fuzz ... (see the source)\n");
    return 2;
}
