/* Synchronous calls (see sync.h). */
#include <lauxlib.h>
#include "call.h"
#include "clock.h"
#include "engine.h"
#include "sync.h"

int qs_sync_run(lua_State *L, qs_client *c, int idx)
{
    qs_call *k = qs_call_at(L, idx);
    for (;;) {
        switch (qs_call_next(L, idx)) {
        case QS_K_SEND:
            qs_client_check_open(L, c);
            if (qs_engine_ready(c->eng) != 0) return luaL_error(L, "qstash: cannot create libcurl handles");
            qs_call_sent(k);
            if (qs_engine_perform(c->eng, &k->req, &k->out, qs_now()) != 0)
                return luaL_error(L, "not enough memory");
            qs_call_feed(L, idx);
            break;
        case QS_K_WAIT:
            qs_sleep(k->wait);
            break;
        case QS_K_DONE:
            qs_call_release(k);
            return 1;
        default:
            qs_call_release(k);
            return 0;
        }
    }
}
