/* tokenizer_spm.c - SentencePiece-style BPE ("llama" tokenizer model): the
 * text is split into UTF-8 characters and adjacent pairs are merged, highest
 * vocabulary score first (ties: leftmost), while the merged text is a token.
 * Pieces that are not tokens fall back to <0xXX> byte tokens.
 *
 * Contract. Reentrant; scratch is allocated per call and freed on return.
 * Out-of-memory sets o->oom. The caller has already escaped spaces to U+2581
 * and added the space prefix.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct spm_sym {
    int32_t prev, next;
    uint32_t off, n;
} spm_sym;

typedef struct spm_big {
    float score;
    int32_t left, right;
    uint32_t size;
} spm_big;

typedef struct spm_heap {
    spm_big *v;
    size_t n, cap;
    bool oom;
} spm_heap;

static bool spm_less(const spm_big *a, const spm_big *b) { /* a pops before b */
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void spm_push(spm_heap *h, spm_big b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        spm_big *r = realloc(h->v, nc * sizeof *r);
        if (!r) {
            h->oom = true;
            return;
        }
        h->v = r;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_less(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
}

static spm_big spm_pop(spm_heap *h) {
    spm_big top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const spm_big *mv = &last;
        if (l < n && spm_less(&h->v[l], mv)) {
            m = l;
            mv = &h->v[l];
        }
        if (r < n && spm_less(&h->v[r], mv)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (n) h->v[i] = last;
    return top;
}

static void spm_try(const hl_tokenizer *t, const char *text, spm_sym *s, spm_heap *h, int32_t l,
                    int32_t r) {
    if (l < 0 || r < 0) return;
    uint32_t size = s[l].n + s[r].n;
    if (size > t->max_token_len) return;
    int32_t id = tok_vocab_find(t, text + s[l].off, size);
    if (id < 0) return;
    spm_big b = {t->score[id], l, r, size};
    spm_push(h, b);
}

void tok_spm_encode(const hl_tokenizer *t, const char *text, size_t n, tok_out *o) {
    if (n == 0) return;
    spm_sym *s = malloc(n * sizeof *s);
    spm_heap h = {0};
    if (!s) {
        o->oom = true;
        return;
    }
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = tok_utf8_len((unsigned char)text[off]);
        if (cl > n - off) cl = n - off;
        s[ns].off = (uint32_t)off;
        s[ns].n = (uint32_t)cl;
        s[ns].prev = ns - 1;
        off += cl;
        s[ns].next = off == n ? -1 : ns + 1;
        ns++;
    }
    for (int32_t i = 1; i < ns; i++) spm_try(t, text, s, &h, i - 1, i);
    while (h.n > 0 && !h.oom) {
        spm_big b = spm_pop(&h);
        spm_sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size || l->next != b.right) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        spm_try(t, text, s, &h, l->prev, b.left);
        spm_try(t, text, s, &h, b.left, l->next);
    }
    if (h.oom) o->oom = true;
    for (int32_t i = 0; i >= 0 && !o->oom; i = s[i].next) {
        if (s[i].n == 0) continue;
        int32_t id = tok_vocab_find(t, text + s[i].off, s[i].n);
        if (id >= 0) {
            tok_out_push(o, id);
            continue;
        }
        for (uint32_t j = 0; j < s[i].n; j++) {
            int32_t bid = t->byte_tok[(uint8_t)text[s[i].off + j]];
            if (bid < 0) bid = t->unk;
            if (bid >= 0) tok_out_push(o, bid);
        }
    }
    free(h.v);
    free(s);
}
