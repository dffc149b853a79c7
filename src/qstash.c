/* Module entry: require "qstash" (failures raise) and require "qstash.safe"
 * (runtime failures return nil, err), both from this shared object. */
#include <lauxlib.h>
#include "api/api.h"
#include "drive/async.h"
#include "drive/loop_hooks.h"
#include "call/call.h"
#include "client/client.h"
#include "base/compat.h"
#include "api/dlq.h"
#include "core/errors.h"
#include "api/follow.h"
#include "api/logs.h"
#include "api/messages.h"
#include "api/flow_control.h"
#include "api/publish.h"
#include "api/batch.h"
#include "api/url_groups.h"
#include "api/queues.h"
#include "api/signing_keys.h"
#include "api/schedules.h"
#include "core/response.h"
#include "qstash.h"
#include "drive/step.h"
#include "verify/verify.h"

#if defined(__GNUC__)
#define QS_EXPORT __attribute__((visibility("default")))
#else
#define QS_EXPORT
#endif

static int mod_new(lua_State *L)
{
    int safe = lua_toboolean(L, lua_upvalueindex(1));
    return qs_client_new(L, 1, safe);
}

static int mod_is_error(lua_State *L)
{
    lua_pushboolean(L, qs_is_error(L, 1));
    return 1;
}

static int open_variant(lua_State *L, int safe)
{
    qs_errors_init(L);
    qs_client_register(L);
    qs_json_init(L);
    qs_api_init(L);
    qs_call_register(L);
    qs_step_register(L);
    qs_async_register(L);

    lua_newtable(L);
    lua_pushboolean(L, safe);
    lua_pushcclosure(L, mod_new, 1);
    lua_setfield(L, -2, "new");
    lua_pushcfunction(L, mod_is_error);
    lua_setfield(L, -2, "is_error");
    lua_pushboolean(L, safe);
    lua_pushcclosure(L, qs_verify, 1);
    lua_setfield(L, -2, "verify");
    lua_pushliteral(L, QS_VERSION);
    lua_setfield(L, -2, "_VERSION");
    qs_api_register(L, qs_dlq_apis, safe);
    qs_api_register(L, qs_publish_apis, safe);
    qs_api_register(L, qs_batch_apis, safe);
    qs_api_register(L, qs_queue_apis, safe);
    qs_api_register(L, qs_schedule_apis, safe);
    qs_api_register(L, qs_message_apis, safe);
    qs_api_register(L, qs_url_group_apis, safe);
    qs_api_register(L, qs_flow_control_apis, safe);
    qs_api_register(L, qs_signing_key_apis, safe);
    qs_api_register(L, qs_logs_apis, safe);
    qs_api_register(L, qs_follow_apis, safe);
    qs_api_register(L, qs_async_apis, safe);
    qs_api_register(L, qs_loop_hook_apis, safe);
    qs_api_register(L, qs_step_apis, safe);
    return 1;
}

QS_EXPORT int luaopen_qstash(lua_State *L)
{
    return open_variant(L, 0);
}

QS_EXPORT int luaopen_qstash_safe(lua_State *L)
{
    return open_variant(L, 1);
}
