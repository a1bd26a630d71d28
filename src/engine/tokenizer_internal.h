/* tokenizer_internal.h - shared state of the tokenizer implementation files
 * (tokenizer.c: load, special tokens, public API; tokenizer_bpe.c: byte-level
 * BPE and its pre-tokenizers; tokenizer_spm.c: SentencePiece merge-by-score;
 * tokenizer_wpm.c: BERT WordPiece). Not a public header.
 *
 * Contract. struct hl_tokenizer is filled once by hl_tokenizer_load and never
 * written afterwards, so every function here takes it const and may run on
 * any number of threads at once. Per-call scratch lives in tok_out / local
 * buffers owned by the caller of each function. All strings are (pointer,
 * length) views into the tokenizer's own pools (copied from the GGUF file).
 */
#ifndef HL_TOKENIZER_INTERNAL_H
#define HL_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"

/* Token attributes (same bit meanings as llama.cpp's llama_token_attr). */
enum {
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
};

typedef enum tok_type { TOK_SPM, TOK_BPE, TOK_WPM } tok_type;

/* A pre-tokenizer step: either a compiled regex or a hand-written splitter. */
typedef enum tok_split_kind {
    TOK_SPLIT_REGEX,
    TOK_SPLIT_DIGITS3,  /* \p{N} runs: leading len%3 digits, then groups of 3 */
    TOK_SPLIT_NEWLINES, /* [^\n]+|[\n]+ */
} tok_split_kind;

#define TOK_MAX_SPLITS 8

typedef struct tok_split {
    tok_split_kind kind;
    pcre2_code *re; /* JIT-compiled, for TOK_SPLIT_REGEX */
} tok_split;

/* Open-addressing hash table of strings -> int32 value. */
typedef struct tok_map {
    uint32_t *slots; /* entry index + 1, 0 = empty */
    uint32_t mask;
} tok_map;

typedef struct tok_merge {
    uint32_t left_off, left_len; /* into merge_pool */
    uint32_t right_off, right_len;
} tok_merge;

struct hl_tokenizer {
    tok_type type;
    int32_t n_vocab;

    /* Token texts, concatenated; token i is pool[off[i] .. off[i]+len[i]). */
    char *pool;
    uint32_t *off, *len;
    float *score;
    uint16_t *attr;
    tok_map vocab; /* text -> id (later duplicates win, as in llama.cpp) */
    uint32_t max_token_len;

    /* Decoded pieces (special=true form), concatenated like the texts. */
    char *piece_pool;
    uint32_t *piece_off, *piece_len;

    /* BPE merges: (left, right) -> rank = index. */
    char *merge_pool;
    tok_merge *merges;
    uint32_t n_merges;
    tok_map merge_map;
    uint32_t max_merge_part;

    /* Pre-tokenizer (BPE). */
    tok_split splits[TOK_MAX_SPLITS];
    int n_splits;
    bool byte_encode;   /* GPT-2 byte-to-unicode mapping of words */
    bool ignore_merges; /* a word that is a whole token is taken as is */
    bool gemma4;        /* runs of newlines that are a token are taken whole */
    bool escape_ws;     /* spaces become U+2581 before tokenizing */
    bool add_space_prefix;
    char b2u[256][2]; /* GPT-2 byte-to-unicode UTF-8, filled by tok_bpe_setup */
    uint8_t b2u_len[256];

    int32_t bos, eos, eot, eom, unk, sep, pad;
    bool add_bos, add_eos, add_sep;

    /* WPM normalizer. */
    bool lowercase, strip_accents;

    /* Special tokens (control, user-defined, unknown), longest text first. */
    int32_t *special;
    int32_t n_special;
    uint8_t *eog; /* n_vocab flags */

    /* byte value -> token id for byte fallback (-1 when missing). */
    int32_t byte_tok[256];
};

/* Growable output id list. */
typedef struct tok_out {
    int32_t *ids;
    size_t n, cap;
    bool oom;
} tok_out;

void tok_out_push(tok_out *o, int32_t id);

/* Hash map helpers. key(i) gives entry i's text. */
uint64_t tok_hash(const char *s, size_t n);
int32_t tok_vocab_find(const hl_tokenizer *t, const char *s, size_t n);
int32_t tok_merge_rank(const hl_tokenizer *t, const char *a, size_t na, const char *b, size_t nb);

/* UTF-8 length from the lead byte, as llama.cpp's unicode_len_utf8 (no
 * validation; 1 for continuation bytes). */
static inline size_t tok_utf8_len(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* Decodes one code point at s[*i] (n bytes total); invalid sequences give
 * U+FFFD and consume one byte. */
uint32_t tok_utf8_decode(const char *s, size_t n, size_t *i);
/* Encodes cp; returns the number of bytes (1..4). */
int tok_utf8_encode(uint32_t cp, char out[4]);

/* SPM: tokenizes one fragment (already space-escaped). */
void tok_spm_encode(const hl_tokenizer *t, const char *text, size_t n, tok_out *o);

/* BPE: pre-tokenizer setup by name (0, or -1 with e set) and encoding. */
int tok_bpe_setup(hl_tokenizer *t, const char *pre, size_t pre_len, hl_err *e);
void tok_bpe_free(hl_tokenizer *t);
void tok_bpe_encode(const hl_tokenizer *t, const char *text, size_t n, tok_out *o);
/* GPT-2 byte-to-unicode mapping: UTF-8 of the code point standing for byte b. */
int tok_byte_to_utf8(uint8_t b, char out[2]);
/* Inverse: code point -> byte, or -1. */
int tok_utf8_to_byte(uint32_t cp);
/* Lists the supported pre-tokenizer names into buf (comma-separated). */
void tok_bpe_names(char *buf, size_t cap);

/* WPM. */
void tok_wpm_encode(const hl_tokenizer *t, const char *text, size_t n, tok_out *o);

#endif
