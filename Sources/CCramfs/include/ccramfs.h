/* CCramfs: cramfs writer and reader (placeholder, being written). */
#ifndef CCRAMFS_H
#define CCRAMFS_H
#include <stdint.h>
#include <stddef.h>
int ccramfs_version(void);
#endif
