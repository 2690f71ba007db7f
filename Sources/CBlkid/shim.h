#ifndef BOOTMEDIUM_CBLKID_SHIM_H
#define BOOTMEDIUM_CBLKID_SHIM_H
#include <blkid/blkid.h>
#endif
