/* The signing-key API functions (signing_keys.c): read the pair, rotate it. */
#ifndef QS_SIGNING_KEYS_H
#define QS_SIGNING_KEYS_H

#include "api/api.h"

extern const qs_api qs_signing_key_apis[];

#endif
