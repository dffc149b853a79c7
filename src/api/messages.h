/* The messages API (messages.c): one message, cancel one, cancel many. */
#ifndef QS_MESSAGES_H
#define QS_MESSAGES_H

#include "api/api.h"

extern const qs_api qs_message_apis[];

#endif
