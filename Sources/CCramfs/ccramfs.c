/* CCramfs: version, status names and the ready-made file-descriptor callbacks. */
#define _GNU_SOURCE
#include "ccramfs_internal.h"

#include <errno.h>
#include <unistd.h>

int ccramfs_version(void) { return CCRAMFS_API_VERSION; }

const char *ccramfs_status_name(ccramfs_status status) {
    switch (status) {
    case CCRAMFS_OK: return "CCRAMFS_OK";
    case CCRAMFS_DONE: return "CCRAMFS_DONE";
    case CCRAMFS_ERR_INVALID_ARGUMENT: return "CCRAMFS_ERR_INVALID_ARGUMENT";
    case CCRAMFS_ERR_NO_MEMORY: return "CCRAMFS_ERR_NO_MEMORY";
    case CCRAMFS_ERR_BAD_NAME: return "CCRAMFS_ERR_BAD_NAME";
    case CCRAMFS_ERR_DUPLICATE_NAME: return "CCRAMFS_ERR_DUPLICATE_NAME";
    case CCRAMFS_ERR_NOT_A_DIRECTORY: return "CCRAMFS_ERR_NOT_A_DIRECTORY";
    case CCRAMFS_ERR_BAD_TYPE: return "CCRAMFS_ERR_BAD_TYPE";
    case CCRAMFS_ERR_FILE_TOO_LARGE: return "CCRAMFS_ERR_FILE_TOO_LARGE";
    case CCRAMFS_ERR_DIRECTORY_TOO_LARGE: return "CCRAMFS_ERR_DIRECTORY_TOO_LARGE";
    case CCRAMFS_ERR_UID_RANGE: return "CCRAMFS_ERR_UID_RANGE";
    case CCRAMFS_ERR_GID_RANGE: return "CCRAMFS_ERR_GID_RANGE";
    case CCRAMFS_ERR_DEVICE_RANGE: return "CCRAMFS_ERR_DEVICE_RANGE";
    case CCRAMFS_ERR_SYMLINK_TARGET: return "CCRAMFS_ERR_SYMLINK_TARGET";
    case CCRAMFS_ERR_IMAGE_TOO_LARGE: return "CCRAMFS_ERR_IMAGE_TOO_LARGE";
    case CCRAMFS_ERR_TOO_MANY_ENTRIES: return "CCRAMFS_ERR_TOO_MANY_ENTRIES";
    case CCRAMFS_ERR_READ_CALLBACK: return "CCRAMFS_ERR_READ_CALLBACK";
    case CCRAMFS_ERR_OUTPUT_CALLBACK: return "CCRAMFS_ERR_OUTPUT_CALLBACK";
    case CCRAMFS_ERR_ZLIB: return "CCRAMFS_ERR_ZLIB";
    case CCRAMFS_ERR_INPUT_CHANGED: return "CCRAMFS_ERR_INPUT_CHANGED";
    case CCRAMFS_ERR_INCONSISTENT: return "CCRAMFS_ERR_INCONSISTENT";
    case CCRAMFS_ERR_TRUNCATED: return "CCRAMFS_ERR_TRUNCATED";
    case CCRAMFS_ERR_BAD_MAGIC: return "CCRAMFS_ERR_BAD_MAGIC";
    case CCRAMFS_ERR_WRONG_ENDIANNESS: return "CCRAMFS_ERR_WRONG_ENDIANNESS";
    case CCRAMFS_ERR_UNSUPPORTED: return "CCRAMFS_ERR_UNSUPPORTED";
    case CCRAMFS_ERR_CORRUPT: return "CCRAMFS_ERR_CORRUPT";
    case CCRAMFS_ERR_BAD_CRC: return "CCRAMFS_ERR_BAD_CRC";
    case CCRAMFS_ERR_LOOP: return "CCRAMFS_ERR_LOOP";
    case CCRAMFS_ERR_TOO_DEEP: return "CCRAMFS_ERR_TOO_DEEP";
    case CCRAMFS_ERR_DECOMPRESS: return "CCRAMFS_ERR_DECOMPRESS";
    case CCRAMFS_ERR_NOT_FOUND: return "CCRAMFS_ERR_NOT_FOUND";
    case CCRAMFS_ERR_WRONG_TYPE: return "CCRAMFS_ERR_WRONG_TYPE";
    case CCRAMFS_ERR_ABORTED: return "CCRAMFS_ERR_ABORTED";
    case CCRAMFS_ERR_IO: return "CCRAMFS_ERR_IO";
    }
    return "CCRAMFS_ERR_UNKNOWN";
}

int ccramfs_output_to_fd(void *ctx, uint64_t offset, const void *buf, size_t len) {
    if (!ctx) return EINVAL;
    int fd = *(const int *)ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno ? errno : EIO;
        }
        if (n == 0) return EIO;
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int ccramfs_pread_from_fd(void *ctx, uint64_t offset, void *buf, size_t len) {
    if (!ctx) return EINVAL;
    int fd = *(const int *)ctx;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno ? errno : EIO;
        }
        if (n == 0) return EIO; /* short file */
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}
