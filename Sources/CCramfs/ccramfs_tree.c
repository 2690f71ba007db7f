/* CCramfs: the in-memory tree description fed to the writer. */
#include "ccramfs_internal.h"

#include <stdlib.h>

/* At most this many entries: every entry needs >= 16 bytes of metadata below 256 MiB. */
#define CC_MAX_ENTRIES ((CCRAMFS_MAX_OFFSET + 4u) / 16u)

ccramfs_tree *ccramfs_tree_new(void) {
    ccramfs_tree *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cap = 64;
    t->nodes = calloc(t->cap, sizeof *t->nodes);
    t->arena_cap = 4096;
    t->arena = malloc(t->arena_cap);
    t->slot_cap = 128;
    t->slots = calloc(t->slot_cap, sizeof *t->slots);
    if (!t->nodes || !t->arena || !t->slots) {
        ccramfs_tree_free(t);
        return NULL;
    }
    t->count = 1;
    t->nodes[0].parent = 0;
    t->nodes[0].mode = CCRAMFS_S_IFDIR | 0755u;
    t->arena[0] = '\0';
    t->arena_len = 1;
    return t;
}

void ccramfs_tree_free(ccramfs_tree *t) {
    if (!t) return;
    free(t->nodes);
    free(t->arena);
    free(t->slots);
    free(t);
}

uint32_t ccramfs_tree_count(const ccramfs_tree *t) { return t ? t->count : 0; }

const char *ccramfs_tree_error(const ccramfs_tree *t) { return t ? t->err : "no tree"; }

ccramfs_status ccramfs_tree_set_root(ccramfs_tree *t, uint32_t mode, uint32_t uid, uint32_t gid) {
    if (!t) return CCRAMFS_ERR_INVALID_ARGUMENT;
    t->err[0] = '\0';
    if (uid > CCRAMFS_MAX_UID) {
        cc_msg(t->err, sizeof t->err, "/: uid %u exceeds the cramfs limit %u", uid, CCRAMFS_MAX_UID);
        return CCRAMFS_ERR_UID_RANGE;
    }
    if (gid > CCRAMFS_MAX_GID) {
        cc_msg(t->err, sizeof t->err, "/: gid %u exceeds the cramfs limit %u", gid, CCRAMFS_MAX_GID);
        return CCRAMFS_ERR_GID_RANGE;
    }
    t->nodes[0].mode = CCRAMFS_S_IFDIR | (mode & 07777u);
    t->nodes[0].uid = uid;
    t->nodes[0].gid = gid;
    return CCRAMFS_OK;
}

void cc_tree_path(const ccramfs_tree *t, uint32_t parent, const char *name, size_t name_len,
                  char *buf, size_t buflen) {
    if (!buf || buflen == 0) return;
    /* Build right to left in a scratch buffer, then copy (truncating at the front). */
    char tmp[1024];
    size_t pos = sizeof tmp;
    tmp[--pos] = '\0';
    int truncated = 0;
    if (name) {
        if (name_len + 1 > pos) {
            truncated = 1;
        } else {
            pos -= name_len;
            memcpy(tmp + pos, name, name_len);
            tmp[--pos] = '/';
        }
    }
    uint32_t i = parent;
    uint32_t steps = 0;
    while (!truncated && i != 0 && i < t->count && steps++ < t->count) {
        const cc_tnode *n = &t->nodes[i];
        if (n->name_len + 1 > pos) {
            truncated = 1;
            break;
        }
        pos -= n->name_len;
        memcpy(tmp + pos, t->arena + n->name_off, n->name_len);
        tmp[--pos] = '/';
        i = n->parent;
    }
    if (pos == sizeof tmp - 1) tmp[--pos] = '/'; /* the root itself */
    if (truncated && pos >= 3) {
        pos -= 3;
        memcpy(tmp + pos, "...", 3);
    }
    cc_msg(buf, buflen, "%s", tmp + pos);
}

static uint64_t cc_slot_hash(uint32_t parent, const char *name, size_t len) {
    uint64_t h = 1469598103934665603ull ^ ((uint64_t)parent * 0x9E3779B97F4A7C15ull);
    for (size_t k = 0; k < len; k++) {
        h ^= (uint8_t)name[k];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h;
}

/* Slot where (parent, name) is or would go. */
static size_t cc_slot_find(const ccramfs_tree *t, uint32_t parent, const char *name, size_t len) {
    size_t mask = t->slot_cap - 1;
    size_t s = (size_t)cc_slot_hash(parent, name, len) & mask;
    for (;;) {
        uint32_t idx = t->slots[s];
        if (idx == 0) return s;
        const cc_tnode *n = &t->nodes[idx];
        if (n->parent == parent && n->name_len == len && memcmp(cc_tname(t, idx), name, len) == 0)
            return s;
        s = (s + 1) & mask;
    }
}

static int cc_slots_grow(ccramfs_tree *t) {
    size_t ncap = t->slot_cap * 2;
    uint32_t *ns = calloc(ncap, sizeof *ns);
    if (!ns) return 0;
    uint32_t *old = t->slots;
    t->slots = ns;
    t->slot_cap = ncap;
    for (uint32_t i = 1; i < t->count; i++) {
        const cc_tnode *n = &t->nodes[i];
        size_t s = cc_slot_find(t, n->parent, cc_tname(t, i), n->name_len);
        t->slots[s] = i;
    }
    free(old);
    return 1;
}

static int cc_arena_reserve(ccramfs_tree *t, size_t more) {
    if (t->arena_len + more <= t->arena_cap) return 1;
    size_t ncap = t->arena_cap;
    while (ncap < t->arena_len + more) {
        if (ncap > SIZE_MAX / 2) return 0;
        ncap *= 2;
    }
    char *na = realloc(t->arena, ncap);
    if (!na) return 0;
    t->arena = na;
    t->arena_cap = ncap;
    return 1;
}

ccramfs_status ccramfs_tree_lookup(const ccramfs_tree *t, uint32_t parent, const char *name,
                                   size_t name_len, uint32_t *out_index) {
    if (!t || (!name && name_len)) return CCRAMFS_ERR_INVALID_ARGUMENT;
    if (parent >= t->count) return CCRAMFS_ERR_INVALID_ARGUMENT;
    size_t s = cc_slot_find(t, parent, name ? name : "", name_len);
    if (t->slots[s] == 0) return CCRAMFS_ERR_NOT_FOUND;
    if (out_index) *out_index = t->slots[s];
    return CCRAMFS_OK;
}

static ccramfs_status cc_add(ccramfs_tree *t, uint32_t parent, const char *name, size_t name_len,
                             const cc_tnode *proto, const char *link, size_t link_len,
                             uint32_t *out_index) {
    char path[600];
    if (parent >= t->count) {
        cc_msg(t->err, sizeof t->err, "parent index %u does not exist (tree has %u entries)",
               parent, t->count);
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    if (!name && name_len) {
        cc_msg(t->err, sizeof t->err, "name is NULL");
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    if (!name) name = "";
    cc_tree_path(t, parent, name, name_len > 512 ? 512 : name_len, path, sizeof path);
    if (cc_type(t->nodes[parent].mode) != CCRAMFS_S_IFDIR) {
        cc_msg(t->err, sizeof t->err, "%s: parent is not a directory", path);
        return CCRAMFS_ERR_NOT_A_DIRECTORY;
    }
    if (!cc_name_ok(name, name_len)) {
        if (name_len > CCRAMFS_MAX_NAME_LEN)
            cc_msg(t->err, sizeof t->err,
                   "%s: name is %zu bytes; cramfs names are limited to %u bytes", path, name_len,
                   CCRAMFS_MAX_NAME_LEN);
        else
            cc_msg(t->err, sizeof t->err,
                   "%s: invalid name (empty, \".\", \"..\", or contains '/' or NUL)", path);
        return CCRAMFS_ERR_BAD_NAME;
    }
    if (t->count >= CC_MAX_ENTRIES) {
        cc_msg(t->err, sizeof t->err, "%s: too many entries (cramfs metadata is limited to 256 MiB)",
               path);
        return CCRAMFS_ERR_TOO_MANY_ENTRIES;
    }
    size_t s = cc_slot_find(t, parent, name, name_len);
    if (t->slots[s] != 0) {
        cc_msg(t->err, sizeof t->err, "%s: already exists", path);
        return CCRAMFS_ERR_DUPLICATE_NAME;
    }
    /* Reserve everything before changing anything. */
    if (t->count == t->cap) {
        uint32_t ncap = t->cap * 2;
        cc_tnode *nn = realloc(t->nodes, (size_t)ncap * sizeof *nn);
        if (!nn) goto oom;
        t->nodes = nn;
        t->cap = ncap;
    }
    if (!cc_arena_reserve(t, name_len + link_len + 2)) goto oom;
    if ((size_t)(t->count + 1) * 2 > t->slot_cap) {
        if (!cc_slots_grow(t)) goto oom;
        s = cc_slot_find(t, parent, name, name_len);
    }
    uint32_t idx = t->count;
    cc_tnode *n = &t->nodes[idx];
    *n = *proto;
    n->parent = parent;
    n->name_len = (uint32_t)name_len;
    n->name_off = t->arena_len;
    memcpy(t->arena + t->arena_len, name, name_len);
    t->arena_len += name_len;
    t->arena[t->arena_len++] = '\0';
    if (link) {
        n->link_off = t->arena_len;
        memcpy(t->arena + t->arena_len, link, link_len);
        t->arena_len += link_len;
        t->arena[t->arena_len++] = '\0';
    }
    t->count++;
    t->slots[s] = idx;
    if (out_index) *out_index = idx;
    return CCRAMFS_OK;
oom:
    cc_msg(t->err, sizeof t->err, "%s: out of memory", path);
    return CCRAMFS_ERR_NO_MEMORY;
}

ccramfs_status ccramfs_tree_add(ccramfs_tree *t, uint32_t parent, const char *name,
                                size_t name_len, const ccramfs_entry *e, uint32_t *out_index) {
    if (!t) return CCRAMFS_ERR_INVALID_ARGUMENT;
    t->err[0] = '\0';
    if (!e) {
        cc_msg(t->err, sizeof t->err, "entry is NULL");
        return CCRAMFS_ERR_INVALID_ARGUMENT;
    }
    char path[600];
    if (parent < t->count)
        cc_tree_path(t, parent, name ? name : "", name ? (name_len > 512 ? 512 : name_len) : 0, path,
                     sizeof path);
    else
        cc_msg(path, sizeof path, "(bad parent %u)", parent);

    cc_tnode proto;
    memset(&proto, 0, sizeof proto);
    uint32_t type = cc_type(e->mode);
    proto.mode = type | (e->mode & 07777u);
    proto.uid = e->uid;
    proto.gid = e->gid;
    if (e->mode & ~(CCRAMFS_S_IFMT | 07777u)) {
        cc_msg(t->err, sizeof t->err, "%s: mode 0%o has bits outside the file type and 07777", path,
               e->mode);
        return CCRAMFS_ERR_BAD_TYPE;
    }
    if (e->uid > CCRAMFS_MAX_UID) {
        cc_msg(t->err, sizeof t->err, "%s: uid %u exceeds the cramfs limit %u", path, e->uid,
               CCRAMFS_MAX_UID);
        return CCRAMFS_ERR_UID_RANGE;
    }
    if (e->gid > CCRAMFS_MAX_GID) {
        cc_msg(t->err, sizeof t->err, "%s: gid %u exceeds the cramfs limit %u", path, e->gid,
               CCRAMFS_MAX_GID);
        return CCRAMFS_ERR_GID_RANGE;
    }
    const char *link = NULL;
    size_t link_len = 0;
    switch (type) {
    case CCRAMFS_S_IFREG:
        if (e->size > CCRAMFS_MAX_FILE_SIZE) {
            cc_msg(t->err, sizeof t->err,
                   "%s: file is %llu bytes; cramfs files must be smaller than 16 MiB (%u bytes)",
                   path, (unsigned long long)e->size, CCRAMFS_MAX_FILE_SIZE + 1u);
            return CCRAMFS_ERR_FILE_TOO_LARGE;
        }
        proto.size = (uint32_t)e->size;
        proto.cookie = e->data_cookie;
        break;
    case CCRAMFS_S_IFLNK:
        if (!e->link_target || e->link_target_len == 0 ||
            e->link_target_len > CCRAMFS_MAX_SYMLINK_LEN ||
            memchr(e->link_target, '\0', e->link_target_len)) {
            cc_msg(t->err, sizeof t->err,
                   "%s: symlink target must be 1...%u bytes without NUL (got %zu bytes)", path,
                   CCRAMFS_MAX_SYMLINK_LEN, e->link_target ? e->link_target_len : (size_t)0);
            return CCRAMFS_ERR_SYMLINK_TARGET;
        }
        link = e->link_target;
        link_len = e->link_target_len;
        proto.size = (uint32_t)link_len;
        break;
    case CCRAMFS_S_IFCHR:
    case CCRAMFS_S_IFBLK:
        if (e->dev_major > CCRAMFS_MAX_DEV_MAJOR || e->dev_minor > CCRAMFS_MAX_DEV_MINOR) {
            cc_msg(t->err, sizeof t->err,
                   "%s: device %u:%u out of range (cramfs stores major and minor in 8 bits each)",
                   path, e->dev_major, e->dev_minor);
            return CCRAMFS_ERR_DEVICE_RANGE;
        }
        proto.size = (e->dev_major << 8) | e->dev_minor;
        break;
    case CCRAMFS_S_IFDIR:
    case CCRAMFS_S_IFIFO:
    case CCRAMFS_S_IFSOCK:
        break;
    default:
        cc_msg(t->err, sizeof t->err, "%s: mode 0%o has no valid file type", path, e->mode);
        return CCRAMFS_ERR_BAD_TYPE;
    }
    return cc_add(t, parent, name, name_len, &proto, link, link_len, out_index);
}

ccramfs_status ccramfs_tree_add_hardlink(ccramfs_tree *t, uint32_t parent, const char *name,
                                         size_t name_len, uint32_t target, uint32_t *out_index) {
    if (!t) return CCRAMFS_ERR_INVALID_ARGUMENT;
    t->err[0] = '\0';
    if (target >= t->count || cc_type(t->nodes[target].mode) != CCRAMFS_S_IFREG) {
        char path[600];
        if (parent < t->count)
            cc_tree_path(t, parent, name ? name : "", name ? (name_len > 512 ? 512 : name_len) : 0,
                         path, sizeof path);
        else
            cc_msg(path, sizeof path, "(bad parent %u)", parent);
        cc_msg(t->err, sizeof t->err, "%s: hard link target %u is not a regular file", path, target);
        return CCRAMFS_ERR_BAD_TYPE;
    }
    cc_tnode proto = t->nodes[target];
    proto.link_off = 0;
    return cc_add(t, parent, name, name_len, &proto, NULL, 0, out_index);
}
