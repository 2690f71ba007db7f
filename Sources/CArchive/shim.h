#ifndef BOOTMEDIUM_CARCHIVE_SHIM_H
#define BOOTMEDIUM_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
