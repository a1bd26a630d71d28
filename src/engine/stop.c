/* stop.c - see stop.h. The text seen but not yet emitted is held[] followed
 * by the new chunk; at() reads that concatenation without copying it. held[]
 * never contains a whole stop string (we would have stopped), so only
 * matches ending inside the new chunk are searched, end position by end
 * position, which finds the first stop to complete. Cost: O(len * total
 * bytes of stop strings) in the worst case, a few bytes compared per
 * position in practice since the comparison starts at the last byte.
 */
#include "stop.h"

#include <string.h>

int hl_stop_init(hl_stop *st, const char *const *strs, const size_t *lens, int n, hl_err *e) {
    if (n < 0 || n > HL_STOP_MAX)
        return hl_errf(e, "stop has %d strings; at most %d are allowed", n, HL_STOP_MAX);
    for (int i = 0; i < n; i++) {
        if (lens[i] == 0) return hl_errf(e, "stop string %d is empty; remove it", i);
        if (lens[i] > HL_STOP_MAX_LEN)
            return hl_errf(e, "stop string %d is %zu bytes; at most %d are allowed", i, lens[i],
                           HL_STOP_MAX_LEN);
    }
    memset(st, 0, sizeof *st);
    for (int i = 0; i < n; i++) {
        memcpy(st->str[i], strs[i], lens[i]);
        st->len[i] = (uint16_t)lens[i];
    }
    st->n = n;
    st->matched = -1;
    return 0;
}

/* Byte i of held[0, n_held) ++ text. */
static inline char at(const hl_stop *st, const char *text, size_t i) {
    return i < st->n_held ? st->held[i] : text[i - st->n_held];
}

/* Does stop k occupy [end - len, end) of the concatenation? */
static bool match_at(const hl_stop *st, const char *text, int k, size_t end) {
    size_t l = st->len[k];
    if (l > end) return false;
    for (size_t j = 0; j < l; j++)
        if (at(st, text, end - 1 - j) != st->str[k][l - 1 - j]) return false;
    return true;
}

/* Writes [0, n) of the concatenation to out. */
static void emit(const hl_stop *st, const char *text, size_t n, char *out) {
    size_t h = n < st->n_held ? n : st->n_held;
    memcpy(out, st->held, h);
    if (n > h) memcpy(out + h, text, n - h);
}

int hl_stop_feed(hl_stop *st, const char *text, size_t len, char *out, size_t cap, size_t *n_out,
                 hl_err *e) {
    *n_out = 0;
    if (st->matched >= 0) return 1;
    if (cap < len + HL_STOP_MAX_LEN)
        return hl_errf(e,
                       "stop: output buffer of %zu bytes is too small for a %zu-byte chunk; "
                       "give at least len + %d",
                       cap, len, HL_STOP_MAX_LEN);
    if (len == 0) return 0;
    size_t total = st->n_held + len;

    /* the first stop to complete: earliest end, then longest, then lowest index */
    for (size_t end = st->n_held + 1; end <= total; end++) {
        int best = -1;
        for (int k = 0; k < st->n; k++)
            if ((best < 0 || st->len[k] > st->len[best]) && match_at(st, text, k, end)) best = k;
        if (best >= 0) {
            emit(st, text, end - st->len[best], out);
            *n_out = end - st->len[best];
            st->matched = best;
            st->n_held = 0;
            return 1;
        }
    }

    /* hold back the longest tail that is a proper prefix of some stop */
    size_t hold = 0;
    for (int k = 0; k < st->n; k++) {
        size_t maxk = st->len[k] - 1u;
        if (maxk > total) maxk = total;
        for (size_t h = maxk; h > hold; h--) {
            size_t j = 0;
            while (j < h && at(st, text, total - h + j) == st->str[k][j]) j++;
            if (j == h) {
                hold = h;
                break;
            }
        }
    }
    size_t n_emit = total - hold;
    emit(st, text, n_emit, out);
    *n_out = n_emit;
    /* the new tail, read before held[] is overwritten (memmove: it may overlap) */
    if (n_emit < st->n_held) {
        memmove(st->held, st->held + n_emit, st->n_held - n_emit);
        memcpy(st->held + (st->n_held - n_emit), text, len);
    } else {
        memcpy(st->held, text + (n_emit - st->n_held), hold);
    }
    st->n_held = hold;
    return 0;
}

size_t hl_stop_flush(hl_stop *st, char *out) {
    size_t n = st->matched >= 0 ? 0 : st->n_held;
    memcpy(out, st->held, n);
    st->n_held = 0;
    return n;
}

int hl_stop_matched(const hl_stop *st) {
    return st->matched;
}
