/* kv.h - the paged KV cache: fixed-size blocks of tokens shared by many
 * sequences.
 *
 *   hl_kv *kv; hl_kv_new(&kv, &shape, &e);
 *   hl_kv_seq_reserve(kv, seq, n_pos, &e);          // blocks for positions [0, n_pos)
 *   uint16_t *k = hl_kv_k(kv, layer, seq, pos, kv_head);
 *
 * Layout. The cache is one allocation of n_blocks blocks. A block holds
 * HL_KV_BLOCK consecutive positions of one sequence, for every layer:
 * [layer][K|V][kv_head][token][row], so attention for one head walks
 * contiguous rows. A row is one (token, kv_head) vector of head_dim values in
 * the cache's element type: f16 (the default) or f32 (exact; used to verify
 * against llama.cpp's most exact configuration). Quantized types (8 or 4
 * bits with a group size along head_dim) only change row_bytes and
 * hl_kv_store / hl_kv_load: block addressing is type-independent.
 *
 * Ownership and threads. The cache owns its memory and the per-sequence
 * block tables. Blocks are refcounted (a block may later be shared by
 * sequences with a common prefix) and come from a free list, so reserving
 * positions allocates no memory. One thread (the model's worker) mutates
 * tables; kernels may read and write rows of reserved positions from the
 * backend's threads.
 */
#ifndef HL_KV_H
#define HL_KV_H

#include <stddef.h>
#include <stdint.h>

#include "../util/dtype.h"
#include "../util/err.h"

/* Positions per block. 256 gives each (layer, K|V, kv head) runs of 256
 * contiguous rows (32 KiB at head_dim 64, f16), which the attention streams
 * well: decode after 1,000-3,000 positions measured 25-40% faster than with
 * blocks of 32 (bench/RESULTS.md), with the same bits. The cost: memory
 * is held in multiples of 256 positions per sequence (a sequence's blocks
 * cover n_ctx rounded up to one; the positions it may use stay n_ctx). */
#define HL_KV_BLOCK 256

typedef struct hl_kv_shape {
    int n_layer;
    int n_kv_head;
    int head_dim;
    int n_seq;     /* sequence ids are [0, n_seq) */
    int n_ctx;     /* most positions one sequence may hold */
    int n_blocks;  /* blocks in the pool; 0 = n_seq * blocks(n_ctx) */
    hl_dtype type; /* HL_F16 or HL_F32 (HL_F32 is 0: callers set it explicitly) */
} hl_kv_shape;

typedef struct hl_kv hl_kv;

int hl_kv_new(hl_kv **out, const hl_kv_shape *shape, hl_err *e);
void hl_kv_free(hl_kv *kv);
size_t hl_kv_bytes(const hl_kv *kv);

/* Makes positions [0, n_pos) of seq addressable, taking blocks from the free
 * list. Fails (no side effects) when n_pos > n_ctx or the pool is empty. */
int hl_kv_seq_reserve(hl_kv *kv, int seq, int n_pos, hl_err *e);
/* Drops positions >= n_pos of seq (0 clears it), returning whole blocks. */
void hl_kv_seq_truncate(hl_kv *kv, int seq, int n_pos);
/* Positions currently reserved for seq. */
int hl_kv_seq_len(const hl_kv *kv, int seq);

/* Row of keys / values of (layer, seq, pos, kv_head); pos must be reserved. */
void *hl_kv_k(const hl_kv *kv, int layer, int seq, int pos, int kv_head);
void *hl_kv_v(const hl_kv *kv, int layer, int seq, int pos, int kv_head);
/* Element type of the rows, and conversion of one row from / to f32. */
hl_dtype hl_kv_type(const hl_kv *kv);
void hl_kv_store(const hl_kv *kv, void *row, const float *src);
void hl_kv_load(const hl_kv *kv, const void *row, float *dst);

#endif
