#ifndef BOOTMEDIUM_CISOFS_SHIM_H
#define BOOTMEDIUM_CISOFS_SHIM_H
/* libisofs.h needs the fixed-width types and off_t/time_t before it is included. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#endif
