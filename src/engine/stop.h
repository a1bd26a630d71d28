/* stop.h - stop strings matched on the stream of generated text.
 *
 *   hl_stop st; const char *strs[] = {"\n\nUser:"}; size_t lens[] = {7};
 *   if (hl_stop_init(&st, strs, lens, 1, &e) < 0) ...;
 *   r = hl_stop_feed(&st, piece, n, out, sizeof out, &n_out, &e); // send n_out; 1: stop
 *
 * Contract. An hl_stop is a plain value (about 4.3 KiB): it copies the stop
 * strings at init and never allocates; put one in each sequence. Feed it
 * every chunk of generated text in order. It returns the bytes that are safe
 * to send now and holds back the longest tail that could still begin a stop
 * string, so a stop string split across any number of chunks is found and
 * never reaches the client. When a stop string completes, the text before it
 * is returned, nothing of it or after it ever is, and generation should end.
 * At the end of generation without a stop, hl_stop_flush returns the held
 * tail. Not thread-safe; one thread at a time per hl_stop.
 *
 * Which stop wins: the first one to complete in the byte stream (earliest
 * end); of several completing at the same byte, the longest (earliest start;
 * then the lowest index). This makes the result independent of how the text
 * is split into chunks. Matching is on bytes; since the stop strings and the
 * chunks are whole UTF-8 (hl_detok gives whole characters), every cut falls
 * on a character boundary.
 *
 * Limits: at most HL_STOP_MAX strings (OpenAI allows 4), each 1 to
 * HL_STOP_MAX_LEN bytes; hl_stop_init fails beyond that.
 */
#ifndef HL_STOP_H
#define HL_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

#define HL_STOP_MAX 16
#define HL_STOP_MAX_LEN 256

typedef struct hl_stop {
    char str[HL_STOP_MAX][HL_STOP_MAX_LEN];
    uint16_t len[HL_STOP_MAX];
    int n;
    char held[HL_STOP_MAX_LEN]; /* tail that may begin a stop string */
    size_t n_held;              /* < HL_STOP_MAX_LEN */
    int matched;                /* index of the stop found, -1 while none */
} hl_stop;

/* Copies n stop strings (strs[i] of lens[i] bytes; n may be 0). Returns 0,
 * or -1 naming the bad entry (empty, too long, too many). */
int hl_stop_init(hl_stop *st, const char *const *strs, const size_t *lens, int n, hl_err *e);

/* Feeds len bytes of new text. Writes the bytes safe to emit now to out and
 * their count to *n_out; cap must be at least len + HL_STOP_MAX_LEN. Returns
 * 0 while no stop string was seen, 1 when one completed (out then holds the
 * text before it; later calls return 1 and emit nothing), -1 on a too small
 * cap (nothing consumed). */
int hl_stop_feed(hl_stop *st, const char *text, size_t len, char *out, size_t cap, size_t *n_out,
                 hl_err *e);

/* End of generation: writes the held tail (nothing after a stop) to out,
 * which must hold HL_STOP_MAX_LEN bytes; returns the byte count. */
size_t hl_stop_flush(hl_stop *st, char *out);

/* Index of the stop string found, or -1. */
int hl_stop_matched(const hl_stop *st);

#endif
