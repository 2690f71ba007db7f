#include "ccramfs.h"
int ccramfs_version(void) { return 1; }
