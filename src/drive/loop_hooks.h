/* The hooks for a host's event loop: on_io, io_changes, io_timeout,
 * io_ready, io_timer, io_poll (design.md, "Event loops"). */
#ifndef QS_LOOP_HOOKS_H
#define QS_LOOP_HOOKS_H

#include "api/api.h"

extern const qs_api qs_loop_hook_apis[];

#endif
