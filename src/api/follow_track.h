/* A followed message's track and its history (follow_track.c). Each
 * function works on the follow's state table at stack index uv. */
#ifndef QS_FOLLOW_TRACK_H
#define QS_FOLLOW_TRACK_H

#include <lua.h>

/* Pushes uv.tracks[id] (nil if the id at stack index id is not followed). */
void qs_track_get(lua_State *L, int uv, int id);

/* Starts the track of the id at stack index id, last in uv.order. */
void qs_track_new(lua_State *L, int uv, int id);

/* Adds the entries of the logs page at the top to their messages' tracks. */
void qs_track_merge_page(lua_State *L, int uv);

/* Pushes the result of the track at idx: { messageId, state, done, dlqId,
 * history }, the history sorted by time. */
void qs_track_push_result(lua_State *L, int track);

#endif
