/* The flow-control API (flow_control.c): a key's live state and actions,
 * the account's parallelism. */
#ifndef QS_FLOW_CONTROL_H
#define QS_FLOW_CONTROL_H

#include "api/api.h"

extern const qs_api qs_flow_control_apis[];

#endif
