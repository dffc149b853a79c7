/* The URL-group API (url_groups.c): QStash's "topics", the groups of
 * endpoints that one publish fans out to. */
#ifndef QS_URL_GROUPS_H
#define QS_URL_GROUPS_H

#include "api/api.h"

extern const qs_api qs_url_group_apis[];

#endif
