/* The caller-driven transport: client:prepare and call:step (step.c). */
#ifndef QS_STEP_H
#define QS_STEP_H

#include <lua.h>
#include "api/api.h"

extern const qs_api qs_step_apis[];

/* Adds step to the call metatable (after qs_call_register). */
void qs_step_register(lua_State *L);

#endif
