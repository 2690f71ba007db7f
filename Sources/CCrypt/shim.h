#ifndef BOOTMEDIUM_CCRYPT_SHIM_H
#define BOOTMEDIUM_CCRYPT_SHIM_H
#include <crypt.h>
#endif
