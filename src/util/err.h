/* err.h - the project's one error convention.
 *
 *   hl_err e = {0};
 *   if (gguf_open(&f, path, &e) < 0) fprintf(stderr, "%s\n", e.msg);
 *
 * Every fallible function returns 0 (or a count) on success and a negative
 * value on failure, and fills the caller's hl_err with one human sentence
 * that says what went wrong and, where it can, what to do. A failed call
 * leaves no side effects behind. hl_err is a plain value: no allocation,
 * no freeing, safe to put on the stack. The first error set wins only if the
 * caller checks; helpers overwrite, so set it once, where the failure is seen.
 */
#ifndef HL_ERR_H
#define HL_ERR_H

#include <stddef.h>

#define HL_ERR_MSG_MAX 512

typedef struct hl_err {
    char msg[HL_ERR_MSG_MAX];
} hl_err;

/* Formats into e (if non-NULL) and returns -1, so callers can write
 * `return hl_errf(e, "...", ...);`. */
int hl_errf(hl_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
