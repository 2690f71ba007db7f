#ifndef BOOTMEDIUM_CLINUX_SHIM_H
#define BOOTMEDIUM_CLINUX_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
// Linux system calls the C library has no wrapper for (glibc 2.36 lacks openat2).
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// openat2(2): `resolve` is a RESOLVE_* mask. Returns a descriptor, or -1 and errno.
static inline int bootmedium_openat2(int dirfd, const char *path, unsigned long long flags,
                                     unsigned long long mode, unsigned long long resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// memfd_create(2) (declared by glibc only with _GNU_SOURCE): an anonymous memory file, for
// bytes a library insists on reading from a path (/proc/self/fd/N).
static inline int bootmedium_memfd(const char *name) {
    return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */);
}

// ioctl(FICLONE) (ioctl is variadic, which Swift cannot call): makes `dst` share all of
// `src`'s extents (XFS, btrfs), or fails (EOPNOTSUPP, EXDEV, EINVAL) where it cannot.
static inline int bootmedium_ficlone(int dst, int src) {
    return ioctl(dst, FICLONE, src);
}

// O_PATH needs _GNU_SOURCE, which Swift's Glibc module is not built with.
static const int bootmedium_o_path = O_PATH;
static const unsigned long long bootmedium_resolve_beneath = RESOLVE_BENEATH;
static const unsigned long long bootmedium_resolve_no_magiclinks = RESOLVE_NO_MAGICLINKS;
#endif
