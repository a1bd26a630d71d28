/* kv.c - the paged KV cache; see kv.h for the layout and contract. */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "../backend/cpu/quant.h"

struct hl_kv {
    hl_kv_shape s;
    int blocks_per_seq;   /* table length per sequence */
    size_t row_bytes;     /* one (token, kv_head) row */
    size_t half_bytes;    /* K or V part of one layer in a block */
    size_t block_bytes;   /* a whole block, every layer */
    uint8_t *data;
    int32_t *table;       /* [n_seq][blocks_per_seq], -1 = none */
    int32_t *seq_len;     /* [n_seq] reserved positions */
    int32_t *refs;        /* [n_blocks] */
    int32_t *free_list;   /* stack of free block ids */
    int n_free;
};

static int blocks_for(int n_pos) { return (n_pos + HL_KV_BLOCK - 1) / HL_KV_BLOCK; }

int hl_kv_new(hl_kv **out, const hl_kv_shape *shape, hl_err *e) {
    *out = NULL;
    const hl_kv_shape *s = shape;
    if (s->n_layer < 1 || s->n_kv_head < 1 || s->head_dim < 1 || s->n_seq < 1 || s->n_ctx < 1)
        return hl_errf(e, "kv cache: every dimension must be positive");
    hl_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return hl_errf(e, "kv cache: out of memory");
    kv->s = *s;
    kv->blocks_per_seq = blocks_for(s->n_ctx);
    if (kv->s.n_blocks <= 0) kv->s.n_blocks = s->n_seq * kv->blocks_per_seq;
    if (s->type != HL_F16 && s->type != HL_F32) {
        free(kv);
        return hl_errf(e, "kv cache: element type %s is not supported (F16, F32)", hl_dtype_name(s->type));
    }
    kv->row_bytes = (size_t)s->head_dim * (s->type == HL_F32 ? sizeof(float) : sizeof(uint16_t));
    kv->half_bytes = kv->row_bytes * HL_KV_BLOCK * (size_t)s->n_kv_head;
    kv->block_bytes = kv->half_bytes * 2 * (size_t)s->n_layer;
    size_t total = kv->block_bytes * (size_t)kv->s.n_blocks;
    if (total / (size_t)kv->s.n_blocks != kv->block_bytes) {
        free(kv);
        return hl_errf(e, "kv cache: size overflows");
    }
    kv->data = aligned_alloc(64, (total + 63) & ~(size_t)63);
    kv->table = malloc(sizeof(int32_t) * (size_t)s->n_seq * (size_t)kv->blocks_per_seq);
    kv->seq_len = calloc((size_t)s->n_seq, sizeof(int32_t));
    kv->refs = calloc((size_t)kv->s.n_blocks, sizeof(int32_t));
    kv->free_list = malloc(sizeof(int32_t) * (size_t)kv->s.n_blocks);
    if (!kv->data || !kv->table || !kv->seq_len || !kv->refs || !kv->free_list) {
        hl_kv_free(kv);
        return hl_errf(e, "kv cache: out of memory allocating %.1f MiB; lower the context size or "
                          "the number of parallel sequences", (double)total / (1 << 20));
    }
    memset(kv->table, 0xff, sizeof(int32_t) * (size_t)s->n_seq * (size_t)kv->blocks_per_seq);
    for (int i = 0; i < kv->s.n_blocks; i++) kv->free_list[i] = kv->s.n_blocks - 1 - i;
    kv->n_free = kv->s.n_blocks;
    *out = kv;
    return 0;
}

void hl_kv_free(hl_kv *kv) {
    if (!kv) return;
    free(kv->data);
    free(kv->table);
    free(kv->seq_len);
    free(kv->refs);
    free(kv->free_list);
    free(kv);
}

size_t hl_kv_bytes(const hl_kv *kv) { return kv->block_bytes * (size_t)kv->s.n_blocks; }

int hl_kv_seq_reserve(hl_kv *kv, int seq, int n_pos, hl_err *e) {
    if (seq < 0 || seq >= kv->s.n_seq) return hl_errf(e, "kv cache: sequence id %d out of range", seq);
    if (n_pos > kv->s.n_ctx)
        return hl_errf(e, "context full: %d positions requested, the context holds %d", n_pos,
                       kv->s.n_ctx);
    int have = blocks_for(kv->seq_len[seq]), need = blocks_for(n_pos);
    if (need - have > kv->n_free)
        return hl_errf(e, "kv cache: out of blocks (%d needed, %d free)", need - have, kv->n_free);
    int32_t *t = kv->table + (size_t)seq * kv->blocks_per_seq;
    for (int b = have; b < need; b++) {
        int32_t id = kv->free_list[--kv->n_free];
        kv->refs[id] = 1;
        t[b] = id;
    }
    if (n_pos > kv->seq_len[seq]) kv->seq_len[seq] = n_pos;
    return 0;
}

void hl_kv_seq_truncate(hl_kv *kv, int seq, int n_pos) {
    if (seq < 0 || seq >= kv->s.n_seq || n_pos >= kv->seq_len[seq]) return;
    if (n_pos < 0) n_pos = 0;
    int32_t *t = kv->table + (size_t)seq * kv->blocks_per_seq;
    for (int b = blocks_for(n_pos); b < blocks_for(kv->seq_len[seq]); b++) {
        int32_t id = t[b];
        if (--kv->refs[id] == 0) kv->free_list[kv->n_free++] = id;
        t[b] = -1;
    }
    kv->seq_len[seq] = n_pos;
}

int hl_kv_seq_len(const hl_kv *kv, int seq) {
    return seq >= 0 && seq < kv->s.n_seq ? kv->seq_len[seq] : 0;
}

static void *row(const hl_kv *kv, int layer, int which, int seq, int pos, int kv_head) {
    int32_t id = kv->table[(size_t)seq * kv->blocks_per_seq + pos / HL_KV_BLOCK];
    uint8_t *b = kv->data + (size_t)id * kv->block_bytes + kv->half_bytes * (size_t)(2 * layer + which);
    return b + kv->row_bytes * ((size_t)kv_head * HL_KV_BLOCK + pos % HL_KV_BLOCK);
}

void *hl_kv_k(const hl_kv *kv, int layer, int seq, int pos, int kv_head) {
    return row(kv, layer, 0, seq, pos, kv_head);
}

void *hl_kv_v(const hl_kv *kv, int layer, int seq, int pos, int kv_head) {
    return row(kv, layer, 1, seq, pos, kv_head);
}

hl_dtype hl_kv_type(const hl_kv *kv) { return kv->s.type; }

void hl_kv_store(const hl_kv *kv, void *row, const float *src) {
    if (kv->s.type == HL_F32) memcpy(row, src, kv->row_bytes);
    else
        for (int d = 0; d < kv->s.head_dim; d++) ((uint16_t *)row)[d] = hl_f32_to_f16(src[d]);
}

void hl_kv_load(const hl_kv *kv, const void *row, float *dst) {
    if (kv->s.type == HL_F32) memcpy(dst, row, kv->row_bytes);
    else
        for (int d = 0; d < kv->s.head_dim; d++) dst[d] = hl_f16_to_f32(((const uint16_t *)row)[d]);
}
