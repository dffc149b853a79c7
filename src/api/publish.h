/* The publish API functions (publish.c). */
#ifndef QS_PUBLISH_H
#define QS_PUBLISH_H

#include "api/api.h"
#include "core/options.h"

/* The publish request after the target's start (see publish.c): the
 * destination at stack index dest, the body at body (nil: empty), the
 * options at opts. Raises argument errors before anything is sent. */
void qs_publish_build(lua_State *L, qs_call *k, const qs_args *a, int dest, int body, int opts,
                      qs_opts_mode mode);

/* The result of a publish: a PublishResponse or a list of them. */
int qs_publish_absorb(lua_State *L, qs_call *k, int uv, long status);

extern const qs_api qs_publish_apis[];

/* Checks the destination at idx (an http(s) URL or a URL-group name),
 * raising an argument error. */
void qs_publish_check_destination(const qs_args *a, int idx);

#endif
