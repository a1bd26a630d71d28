/* tokenizer.h - GGUF tokenizers: SentencePiece-style ("llama") and
 * byte-level BPE ("gpt2") with the pre-tokenizer named by tokenizer.ggml.pre.
 *
 *   hl_tokenizer *tok; hl_err e;
 *   if (hl_tokenizer_load(&tok, gguf, &e) < 0) ...;
 *   int32_t ids[512]; int n = hl_tokenize(tok, text, len, true, true, ids, 512);
 *   hl_tokenizer_free(tok);
 *
 * Contract. The tokenizer is built from a gguf_file's tokenizer.* metadata
 * and copies everything it needs, so the file may be closed afterwards. It
 * is immutable after load and safe to share between threads. Vocab-only
 * files load. Unsupported tokenizer models or pre-tokenizers fail the load
 * with a message naming the value and listing the supported ones.
 *
 * Detokenizing streams: hl_detok carries the bytes of an incomplete UTF-8
 * sequence between calls so a caller never emits half a character.
 */
#ifndef HL_TOKENIZER_H
#define HL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gguf/gguf.h"
#include "../util/err.h"

typedef struct hl_tokenizer hl_tokenizer;

int hl_tokenizer_load(hl_tokenizer **out, const gguf_file *f, hl_err *e);
void hl_tokenizer_free(hl_tokenizer *t);

int32_t hl_tokenizer_n_vocab(const hl_tokenizer *t);
int32_t hl_tokenizer_bos(const hl_tokenizer *t); /* -1 when none */
int32_t hl_tokenizer_eos(const hl_tokenizer *t); /* -1 when none */
bool hl_tokenizer_add_bos(const hl_tokenizer *t);
bool hl_tokenizer_add_eos(const hl_tokenizer *t);
/* True for tokens that end generation (EOS, EOT, end-of-turn tokens the
 * vocabulary marks as such). */
bool hl_tokenizer_is_eog(const hl_tokenizer *t, int32_t id);

/* Tokenizes len bytes of text. add_special: add BOS/EOS as the model's
 * metadata asks. parse_special: text that spells a special/control token is
 * that token (otherwise it is plain text). Writes at most cap ids; returns
 * the total number of ids the text needs (which may exceed cap: call again
 * with a larger buffer), or -1 on invalid arguments. */
int64_t hl_tokenize(const hl_tokenizer *t, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t *ids, int64_t cap);

/* The bytes a token stands for when generated (byte tokens become their
 * byte, SentencePiece's U+2581 becomes a space, BPE's byte-to-unicode map
 * is undone). Control tokens give an empty piece unless `special` is set.
 * Returns the piece length; writes up to cap bytes. -1 for a bad id. */
int hl_token_piece(const hl_tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: appends a token's bytes and returns how many bytes
 * of complete UTF-8 are ready in out (at most cap). Incomplete trailing
 * sequences are held until completed; invalid sequences are passed through
 * as they are. Call hl_detok_flush at the end. */
typedef struct hl_detok {
    char pending[8];
    int n_pending;
} hl_detok;
int hl_detok_push(const hl_tokenizer *t, hl_detok *d, int32_t id, char *out, size_t cap);
int hl_detok_flush(hl_detok *d, char *out, size_t cap);

#endif
