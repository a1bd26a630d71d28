/* gguf_internal.h - definitions shared by gguf_read.c and gguf_write.c only.
 *
 *   const gguf_array *a = kv->val.v.arr;   // the writer walks a reader's arrays
 *   size_t es = gguf_vtype_size(a->type);  // 0 for STRING / ARRAY
 *
 * Contract: nothing outside src/gguf/ includes this file. A gguf_array is
 * owned by the gguf_file that parsed it; every pointer in it points into that
 * file's image (data) or into allocations freed by gguf_close (offs, sub).
 * Little-endian hosts only: GGUF stores little-endian numbers and the reader
 * hands out packed element data as stored.
 */
#ifndef HL_GGUF_INTERNAL_H
#define HL_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "heylook's GGUF layer assumes a little-endian host"
#endif

/* Arrays nested deeper than this (an array of arrays of ... ) are refused. */
#define GGUF_MAX_NEST 8

struct gguf_array {
    gguf_vtype type;     /* element type */
    uint64_t n;          /* element count */
    const uint8_t *data; /* element 0 in the image (packed, for fixed-size types) */
    uint64_t *offs;      /* STRING: offset from data of element i's length prefix */
    gguf_array *sub;     /* ARRAY: the n parsed child arrays */
};

/* Bytes of one element of a fixed-size value type; 0 for STRING, ARRAY and
 * numbers that are no value type. */
static inline size_t gguf_vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_VT_U8:
    case GGUF_VT_I8:
    case GGUF_VT_BOOL:
        return 1;
    case GGUF_VT_U16:
    case GGUF_VT_I16:
        return 2;
    case GGUF_VT_U32:
    case GGUF_VT_I32:
    case GGUF_VT_F32:
        return 4;
    case GGUF_VT_U64:
    case GGUF_VT_I64:
    case GGUF_VT_F64:
        return 8;
    default:
        return 0;
    }
}

static inline uint64_t gguf_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t gguf_le32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#endif
