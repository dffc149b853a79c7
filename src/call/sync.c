/* Synchronous calls (see sync.h). */
#include <lauxlib.h>
#include "call/call.h"
#include "base/clock.h"
#include "engine/engine.h"
#include "call/sync.h"

int qs_sync_run(lua_State *L, qs_client *c, qs_call *k, int idx)
{
    return qs_sync_run_hooked(L, c, k, idx, NULL, NULL);
}

int qs_sync_run_hooked(lua_State *L, qs_client *c, qs_call *k, int idx, qs_sync_hook hook, void *ud)
{
    qs_call_state st = qs_call_next(L, k, idx);
    for (;;) {
        switch (st) {
        case QS_K_SEND:
            qs_client_check_open(L, c);
            if (qs_engine_ready(c->eng) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
            qs_call_sent(k);
            if (qs_engine_perform(c->eng, &k->req, k->out, qs_now()) != 0)
                return luaL_error(L, "not enough memory");
            st = qs_call_feed(L, k, idx);
            break;
        case QS_K_WAIT:
            if (hook && hook(L, ud)) {
                qs_call_release(k);
                return -1;
            }
            qs_sleep(k->wait);
            st = qs_call_next(L, k, idx);
            break;
        default:
            /* the end is at the top; the call's bulky memory goes now */
            qs_call_release(k);
            return st == QS_K_DONE;
        }
    }
}
