/* tokenizer_wpm.c - WordPiece ("bert" tokenizer model): BERT normalization
 * (optional NFD accent stripping and lowercasing, controls dropped, split on
 * white space, punctuation / ASCII symbols / CJK ideographs as single-char
 * words), then greedy longest-match of "U+2581word" pieces; a word with an
 * unmatched position becomes the unknown token. Follows llama.cpp's WPM.
 *
 * Contract. Reentrant; scratch is allocated per call and freed on return.
 * Out-of-memory sets o->oom.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "tokenizer_unicode.h"

static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest-match of one word (already prefixed with U+2581). */
static void wpm_word(const hl_tokenizer *t, const char *w, size_t n, tok_out *o) {
    size_t start = o->n;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > t->max_token_len ? i + t->max_token_len : n;
        int32_t id = -1;
        for (; j > i; j--) {
            id = tok_vocab_find(t, w + i, j - i);
            if (id >= 0) break;
        }
        if (id < 0) {
            o->n = start; /* discard the word's pieces */
            break;
        }
        tok_out_push(o, id);
        i = j;
    }
    if (o->n == start && t->unk >= 0) tok_out_push(o, t->unk);
}

void tok_wpm_encode(const hl_tokenizer *t, const char *text, size_t n, tok_out *o) {
    char *w = malloc(n * 4 + 8); /* current word, U+2581-prefixed */
    if (!w) {
        o->oom = true;
        return;
    }
    size_t wn = 3;
    memcpy(w, "\xe2\x96\x81", 3);
    for (size_t i = 0; i < n && !o->oom;) {
        uint32_t cp = tok_utf8_decode(text, n, &i);
        if (t->strip_accents) cp = tok_uni_nfd_first(cp);
        int k = tok_uni_class(cp);
        if (k == TOK_UNI_SPACE) {
            if (wn > 3) wpm_word(t, w, wn, o);
            wn = 3;
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || k == TOK_UNI_CONTROL) continue;
        if (t->strip_accents && k == TOK_UNI_MARK) continue;
        if (t->lowercase) cp = tok_uni_lower(cp);
        char u[4];
        int ul = tok_utf8_encode(cp, u);
        if (k == TOK_UNI_PUNCT || (cp < 0x7F && k == TOK_UNI_SYMBOL) || is_cjk(cp)) {
            if (wn > 3) wpm_word(t, w, wn, o);
            memcpy(w + 3, u, (size_t)ul);
            wpm_word(t, w, 3 + (size_t)ul, o);
            wn = 3;
        } else {
            memcpy(w + wn, u, (size_t)ul);
            wn += (size_t)ul;
        }
    }
    if (wn > 3 && !o->oom) wpm_word(t, w, wn, o);
    free(w);
}
