/* tokenizer_bpe.c - byte-level BPE ("gpt2" and "gemma4" tokenizer models):
 * the pre-tokenizer chosen by tokenizer.ggml.pre, the GPT-2 byte-to-unicode
 * mapping and the rank-ordered merge loop.
 *
 * Contract. tok_bpe_setup compiles the pre-tokenizer's regexes (PCRE2, UTF +
 * UCP, JIT) once at load into the tokenizer; tok_bpe_free releases them.
 * tok_bpe_encode is reentrant: all scratch (match data, JIT stack, symbol
 * and heap arrays) is allocated per call and freed before it returns. On
 * out-of-memory it sets o->oom and stops.
 *
 * Pre-tokenization follows llama.cpp's semantics: each regex of the set in
 * turn splits every current segment into its matches *and* the text between
 * them; the resulting words are merged independently. Input that is not
 * valid UTF-8 is first mapped byte-for-byte to U+FFFD, as llama.cpp does.
 * The regexes are written in llama.cpp's adapted forms; before compiling we
 * rewrite \s to llama.cpp's whitespace set, \d to [0-9], and \p{Lu}/\p{Ll}/
 * \p{Lt}/\p{Lm}/\p{Lo} to \p{L} (llama.cpp collapses those to "letter").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* ---- pre-tokenizer regex sets ---- */

#define CONTR "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                                  \
    CONTR                                                                                          \
        "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
        "\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"    \
          "\\s+(?!\\S)|\\s+"
#define RE_DS3_MAIN                                                                                \
    "[!\"#$%&'()*+,\\-./"                                                                          \
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"                 \
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK_KANA "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define RE_CASED(num)                                                                              \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"     \
    "+" CONTR "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{"   \
              "Lo}\\p{M}]*" CONTR "?|" num                                                         \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
#define RE_HAN                                                                                     \
    "\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{20000}-\\x{2A6DF}\\x{2A700}-\\x{2EBEF}\\x{F900}-"   \
    "\\x{FAFF}\\x{2F800}-\\x{2FA1F}"

/* Markers for the hand-written splitters in a set. */
#define SPLIT_DIGITS3                                                                              \
    "\x01"                                                                                         \
    "digits3"
#define SPLIT_NEWLINES                                                                             \
    "\x01"                                                                                         \
    "newlines"

typedef struct pre_set {
    const char *id;
    const char *re[TOK_MAX_SPLITS];
    bool raw_utf8; /* no byte-to-unicode mapping */
} pre_set;

static const pre_set k_sets[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false},
    {"llama3", {RE_LLAMA3}, false},
    {"jais2",
     {CONTR
      "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|"
      "\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"},
     false},
    {"deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
      "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
      "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-"
      "\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
      "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-"
      "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
      "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
      "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
      "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-"
      "\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
      "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
      "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
      "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-"
      "\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
      "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
      "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
      "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      "\\s+$", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"},
     false},
    {"deepseek-v3", {"\\p{N}{1,3}", RE_CJK_KANA, RE_DS3_MAIN}, false},
    {"spark2_5",
     {"\\p{N}{1,3}", RE_CJK_KANA,
      "[!\"#$%&'()*+,\\-./"
      ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
      "| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
      "\\p{N}"},
     false},
    {"youtu",
     {"[\\x{AC00}-\\x{D7A3}\\x{3131}-\\x{318E}]+|[\\x{FF01}\\x{2026}\\x{201C}\\x{201D}\\x{2018}\\x{"
      "2019}\\x{2014}\\x{FF1A}\\x{FF1B}\\x{FF0C}\\x{3001}-\\x{303F}\\x{FE30}-\\x{FE4F}]+|[\\x{3105}"
      "-\\x{312F}]+|[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      RE_CASED("\\p{N}")},
     false},
    {"deepseek-coder",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
      "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"},
     false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false},
    {"starcoder", {"\\p{N}", RE_GPT2}, false},
    {"gpt2", {RE_GPT2}, false},
    {"qwen2", {RE_QWEN2}, false},
    {"qwen35",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"poro", {RE_PORO}, false},
    {"viking", {RE_PORO, "\\p{N}"}, false},
    {"tekken",
     {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?("
      "(?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+"},
     false},
    {"chameleon",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     false},
    {"gpt4o",
     {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" CONTR
      "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*" CONTR
      "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"granite-emb-multi",
     {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+" CONTR
      "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*" CONTR
      "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"tiny-aya", {SPLIT_DIGITS3, RE_CASED("\\p{N}{1,3}")}, false},
    {"kimi-k2",
     {"[" RE_HAN "]+|[^\\r\\n\\p{L}\\p{N}]?(?:(?![" RE_HAN "])\\p{L})+" CONTR
      "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"superbpe", {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}, false},
    {"bailingmoe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}"
      "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false},
    {"seed-coder",
     {CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|"
            "\\s+(?!\\S)|\\s+"},
     false},
    {"ufakzeka",
     {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|"
      "\\s+"},
     false},
    {"afmoe",
     {SPLIT_DIGITS3,
      "[\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{8C48}-\\x{FAFF}\\x{3040}-\\x{309F}\\x{30A0}-\\x{"
      "30FF}\\x{FF65}-\\x{FF9F}\\x{2F00}-\\x{2FDF}\\x{E40}-\\x{E7F}\\x{E80}-\\x{EFF}\\x{1780}-\\x{"
      "17FF}\\x{1000}-\\x{109F}\\x{AA60}-\\x{AA7F}\\x{A9E0}-\\x{A9FF}\\x{AC00}-\\x{D7AF}\\x{1100}-"
      "\\x{11FF}]+",
      RE_DS3_MAIN},
     false},
    {"laguna", {SPLIT_NEWLINES, RE_QWEN2}, false},
    {"exaone-moe",
     {CONTR
      "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
      "[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false},
    {"gemma4", {SPLIT_NEWLINES}, true},
    {"minicpm5",
     {"\\p{N}{1,3}", CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                           "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false},
    {"whitespace", {"\\S+"}, true},
};

enum {
    PF_IGNORE_MERGES = 1,
    PF_ADD_BOS = 2,
    PF_ESCAPE_WS = 4,
    PF_NO_BOS = 8,
    PF_GEMMA4 = 16,
};

/* tokenizer.ggml.pre value -> regex set and flags (llama.cpp's table). */
static const struct {
    const char *name;
    const char *set;
    int flags;
} k_pre[] = {
    {"default", "default", 0},
    {"minicpm5", "minicpm5", PF_IGNORE_MERGES},
    {"llama3", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"llama-v3", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"llama-bpe", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"falcon3", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"falcon-h1", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"pixtral", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"midm-2.0", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"lfm2", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"jina-v5-nano", "llama3", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"deepseek-llm", "deepseek-llm", 0},
    {"deepseek-coder", "deepseek-coder", 0},
    {"deepseek-v3", "deepseek-v3", 0},
    {"spark2_5", "spark2_5", 0},
    {"youtu", "youtu", PF_IGNORE_MERGES},
    {"falcon", "falcon", 0},
    {"mpt", "gpt2", 0},
    {"starcoder", "starcoder", 0},
    {"gpt-2", "gpt2", 0},
    {"phi-2", "gpt2", 0},
    {"jina-es", "gpt2", 0},
    {"jina-de", "gpt2", 0},
    {"gigachat", "gpt2", 0},
    {"jina-v2-es", "gpt2", 0},
    {"jina-v2-de", "gpt2", 0},
    {"a.x-4.0", "gpt2", 0},
    {"mellum", "gpt2", 0},
    {"modern-bert", "gpt2", 0},
    {"jais-2", "jais2", 0},
    {"gemma4", "gemma4", PF_ESCAPE_WS | PF_GEMMA4},
    {"granite-embed-multi-311m", "gemma4", PF_ESCAPE_WS | PF_GEMMA4},
    {"sarvam-moe", "gemma4", PF_ESCAPE_WS},
    {"jina-v1-en", "gpt2", 0},
    {"jina-v2-code", "gpt2", 0},
    {"roberta-bpe", "gpt2", 0},
    {"whitespace", "whitespace", 0},
    {"refact", "starcoder", 0},
    {"command-r", "starcoder", 0},
    {"qwen2", "qwen2", 0},
    {"deepseek-r1-qwen", "qwen2", 0},
    {"kormo", "qwen2", 0},
    {"f2llmv2", "qwen2", 0},
    {"qwen35", "qwen35", 0},
    {"stablelm2", "qwen2", 0},
    {"olmo", "gpt2", 0},
    {"dbrx", "llama3", 0},
    {"smaug-bpe", "llama3", 0},
    {"poro-chat", "poro", 0},
    {"chatglm-bpe", "llama3", PF_NO_BOS},
    {"glm4", "llama3", PF_NO_BOS | PF_IGNORE_MERGES},
    {"glm5", "llama3", PF_NO_BOS | PF_IGNORE_MERGES},
    {"viking", "viking", 0},
    {"jais", "gpt2", 0},
    {"tekken", "tekken", PF_IGNORE_MERGES | PF_ADD_BOS},
    {"smollm", "starcoder", 0},
    {"codeshell", "starcoder", 0},
    {"bloom", "poro", 0},
    {"gpt3-finnish", "poro", 0},
    {"exaone", "starcoder", 0},
    {"exaone4", "gpt2", 0},
    {"exaone-moe", "exaone-moe", 0},
    {"chameleon", "chameleon", PF_ADD_BOS},
    {"minerva-7b", "starcoder", 0},
    {"megrez", "qwen2", 0},
    {"gpt-4o", "gpt4o", 0},
    {"llama4", "gpt4o", 0},
    {"kanana2", "gpt4o", 0},
    {"talkie", "gpt4o", 0},
    {"granite-embed-multi-97m", "granite-emb-multi", PF_IGNORE_MERGES},
    {"tiny_aya", "tiny-aya", 0},
    {"cohere2moe", "tiny-aya", 0},
    {"superbpe", "superbpe", 0},
    {"trillion", "gpt2", 0},
    {"granite-docling", "gpt2", 0},
    {"bailingmoe", "bailingmoe", 0},
    {"bailingmoe2", "bailingmoe", 0},
    {"llada-moe", "bailingmoe", 0},
    {"seed-coder", "seed-coder", 0},
    {"hunyuan", "qwen2", 0},
    {"hunyuan-dense", "deepseek-v3", 0},
    {"hy_v4", "deepseek-v3", 0},
    {"joyai-llm", "deepseek-v3", 0},
    {"kimi-k2", "kimi-k2", 0},
    {"ufakzeka", "ufakzeka", 0},
    {"grok-2", "qwen2", 0},
    {"afmoe", "afmoe", 0},
    {"laguna", "laguna", 0},
    {"minimax-m2", "gpt4o", 0},
    {"solar-open", "qwen2", 0},
    {"mellum2", "starcoder", 0},
};

void tok_bpe_names(char *buf, size_t cap) {
    size_t n = 0;
    if (cap) buf[0] = 0;
    for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++) {
        int w = snprintf(buf + n, cap > n ? cap - n : 0, "%s%s", i ? ", " : "", k_pre[i].name);
        if (w < 0 || (size_t)w >= cap - n) break;
        n += (size_t)w;
    }
}

/* llama.cpp's whitespace set (Unicode White_Space), as class content. */
#define WS_CLASS                                                                                   \
    "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"      \
    "\\x{205F}\\x{3000}"

/* Rewrites a pattern (see the file comment). Returns a malloc'd string. */
static char *rewrite_pattern(const char *p) {
    size_t n = strlen(p), cap = n * 8 + 256, o = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < n;) {
        if (o + 200 > cap) {
            cap *= 2;
            char *r = realloc(out, cap);
            if (!r) {
                free(out);
                return NULL;
            }
            out = r;
        }
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            const char *rep = NULL;
            size_t skip = 2;
            if (d == 's')
                rep = in_class ? WS_CLASS : "[" WS_CLASS "]";
            else if (d == 'S' && !in_class)
                rep = "[^" WS_CLASS "]";
            else if (d == 'd')
                rep = in_class ? "0-9" : "[0-9]";
            else if (d == 'p' && i + 5 < n && p[i + 2] == '{' && p[i + 3] == 'L' &&
                     p[i + 5] == '}' && strchr("ultmo", p[i + 4])) {
                rep = "\\p{L}";
                skip = 6;
            }
            if (rep) {
                size_t rl = strlen(rep);
                memcpy(out + o, rep, rl);
                o += rl;
            } else {
                out[o++] = c;
                out[o++] = d;
            }
            i += skip;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out[o++] = c;
            i++;
            if (i < n && p[i] == '^') out[o++] = p[i++];
            class_start = i;
            continue;
        }
        if (in_class && c == ']' && i != class_start) in_class = false;
        out[o++] = c;
        i++;
    }
    out[o] = 0;
    return out;
}

int tok_bpe_setup(hl_tokenizer *t, const char *pre, size_t pre_len, hl_err *e) {
    int k = -1;
    for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++) {
        if (strlen(k_pre[i].name) == pre_len && memcmp(k_pre[i].name, pre, pre_len) == 0) {
            k = (int)i;
            break;
        }
    }
    if (k < 0) {
        char names[2048];
        tok_bpe_names(names, sizeof names);
        return hl_errf(e, "unknown tokenizer.ggml.pre '%.*s'; supported: %s", (int)pre_len, pre,
                       names);
    }
    const pre_set *set = NULL;
    for (size_t i = 0; i < sizeof k_sets / sizeof k_sets[0]; i++)
        if (strcmp(k_sets[i].id, k_pre[k].set) == 0) set = &k_sets[i];
    if (!set) return hl_errf(e, "internal: no regex set '%s'", k_pre[k].set);

    int fl = k_pre[k].flags;
    t->byte_encode = !set->raw_utf8;
    t->ignore_merges = (fl & PF_IGNORE_MERGES) != 0;
    t->escape_ws = (fl & PF_ESCAPE_WS) != 0;
    t->gemma4 = (fl & PF_GEMMA4) != 0;
    if (fl & PF_ADD_BOS) t->add_bos = true;
    if (fl & PF_NO_BOS) t->bos = -1;

    for (int b = 0; b < 256; b++) t->b2u_len[b] = (uint8_t)tok_byte_to_utf8((uint8_t)b, t->b2u[b]);
    t->n_splits = 0;
    for (int i = 0; i < TOK_MAX_SPLITS && set->re[i]; i++) {
        tok_split *s = &t->splits[t->n_splits];
        s->re = NULL;
        const char *src = set->re[i];
        if (strcmp(src, SPLIT_NEWLINES) == 0) {
            s->kind = TOK_SPLIT_NEWLINES;
        } else {
            s->kind = TOK_SPLIT_REGEX;
            if (strcmp(src, SPLIT_DIGITS3) == 0) {
                s->kind = TOK_SPLIT_DIGITS3;
                src = "\\p{N}+";
            }
            char *pat = rewrite_pattern(src);
            if (!pat) {
                tok_bpe_free(t);
                return hl_errf(e, "out of memory compiling pre-tokenizer regex");
            }
            int err = 0;
            PCRE2_SIZE eoff = 0;
            s->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK,
                                  &err, &eoff, NULL);
            free(pat);
            if (!s->re) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(err, msg, sizeof msg);
                tok_bpe_free(t);
                return hl_errf(e, "pre-tokenizer '%s' regex %d does not compile at %zu: %s",
                               k_pre[k].name, i, (size_t)eoff, (const char *)msg);
            }
            /* JIT is an optimization; the interpreter is the fallback. */
            (void)pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE);
        }
        t->n_splits++;
    }
    return 0;
}

void tok_bpe_free(hl_tokenizer *t) {
    for (int i = 0; i < t->n_splits; i++) {
        if (t->splits[i].re) pcre2_code_free(t->splits[i].re);
        t->splits[i].re = NULL;
    }
    t->n_splits = 0;
}

/* ---- byte-to-unicode ---- */

static uint32_t byte_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    /* the rest are numbered 256.. in byte order */
    uint32_t k = 0;
    for (uint32_t c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) k++;
    return 256 + k;
}

int tok_byte_to_utf8(uint8_t b, char out[2]) {
    char tmp[4];
    int n = tok_utf8_encode(byte_cp(b), tmp);
    memcpy(out, tmp, (size_t)n);
    return n;
}

int tok_utf8_to_byte(uint32_t cp) {
    if (cp < 256) {
        uint8_t b = (uint8_t)cp;
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
        return -1;
    }
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    for (int c = 0; c < 256; c++) {
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) {
            if (k == 0) return c;
            k--;
        }
    }
    return -1;
}

/* ---- splitting ---- */

typedef struct seg {
    size_t off, len;
} seg;

typedef struct seglist {
    seg *v;
    size_t n, cap;
} seglist;

static bool seg_push(seglist *l, size_t off, size_t len) {
    if (len == 0) return true; /* empty words produce no tokens */
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        seg *r = realloc(l->v, nc * sizeof *r);
        if (!r) return false;
        l->v = r;
        l->cap = nc;
    }
    l->v[l->n].off = off;
    l->v[l->n].len = len;
    l->n++;
    return true;
}

/* Digit runs (found by re, "\\p{N}+") split as llama.cpp's AFMoE splitter:
 * the first len%3 digits (if any), then groups of three. */
static bool split_digits3(const pcre2_code *re, const char *s, seglist *out, seg g,
                          pcre2_match_data *md, pcre2_match_context *mc) {
    PCRE2_SPTR subj = (PCRE2_SPTR)(s + g.off);
    size_t len = g.len, start = 0, prev = 0;
    while (start < len) {
        int rc = pcre2_match(re, subj, len, start, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev && !seg_push(out, g.off + prev, ms - prev)) return false;
        size_t cnt = 0;
        for (size_t i = ms; i < me; i += tok_utf8_len((unsigned char)subj[i])) cnt++;
        size_t take = cnt % 3 ? cnt % 3 : 3, i = ms;
        while (i < me) {
            size_t j = i;
            for (size_t k = 0; k < take && j < me; k++) j += tok_utf8_len((unsigned char)subj[j]);
            if (!seg_push(out, g.off + i, j - i)) return false;
            i = j;
            take = 3;
        }
        prev = start = me;
    }
    if (prev < len && !seg_push(out, g.off + prev, len - prev)) return false;
    return true;
}

static bool split_newlines(const char *s, seglist *out, seg g) {
    size_t i = 0;
    while (i < g.len) {
        bool nl = s[g.off + i] == '\n';
        size_t j = i;
        while (j < g.len && (s[g.off + j] == '\n') == nl) j++;
        if (!seg_push(out, g.off + i, j - i)) return false;
        i = j;
    }
    return true;
}

static bool split_regex(const pcre2_code *re, const char *s, seglist *out, seg g,
                        pcre2_match_data *md, pcre2_match_context *mc) {
    PCRE2_SPTR subj = (PCRE2_SPTR)(s + g.off);
    size_t len = g.len, start = 0, prev = 0;
    uint32_t opts = 0;
    while (start <= len) {
        int rc = pcre2_match(re, subj, len, start, opts | PCRE2_NO_UTF_CHECK, md, mc);
        if (rc < 0) {
            if (opts != 0 && rc == PCRE2_ERROR_NOMATCH) {
                /* no non-empty match here: step one character */
                opts = 0;
                if (start >= len) break;
                start += tok_utf8_len((unsigned char)subj[start]);
                continue;
            }
            break; /* no match (or a match-limit error): rest is one segment */
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev && !seg_push(out, g.off + prev, ms - prev)) return false;
        if (!seg_push(out, g.off + ms, me - ms)) return false;
        prev = me;
        if (me == ms) {
            opts = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
            start = me;
        } else {
            opts = 0;
            start = me;
        }
    }
    if (prev < len && !seg_push(out, g.off + prev, len - prev)) return false;
    return true;
}

/* ---- merging ---- */

typedef struct sym {
    int32_t prev, next;
    uint32_t off, n;
} sym;

typedef struct bigram {
    int32_t rank;
    int32_t left, right;
    uint32_t ln, rn;
} bigram;

typedef struct scratch {
    sym *syms;
    size_t nsyms, capsyms;
    bigram *heap;
    size_t nheap, capheap;
    char *word;
    size_t capword;
    bool oom;
} scratch;

static bool big_less(const bigram *a, const bigram *b) { /* a pops before b */
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(scratch *sc, bigram b) {
    if (sc->nheap == sc->capheap) {
        size_t nc = sc->capheap ? sc->capheap * 2 : 64;
        bigram *r = realloc(sc->heap, nc * sizeof *r);
        if (!r) {
            sc->oom = true;
            return;
        }
        sc->heap = r;
        sc->capheap = nc;
    }
    size_t i = sc->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!big_less(&b, &sc->heap[p])) break;
        sc->heap[i] = sc->heap[p];
        i = p;
    }
    sc->heap[i] = b;
}

static bigram heap_pop(scratch *sc) {
    bigram top = sc->heap[0];
    bigram last = sc->heap[--sc->nheap];
    size_t i = 0, n = sc->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bigram *mv = &last;
        if (l < n && big_less(&sc->heap[l], mv)) {
            m = l;
            mv = &sc->heap[l];
        }
        if (r < n && big_less(&sc->heap[r], mv)) m = r;
        if (m == i) break;
        sc->heap[i] = sc->heap[m];
        i = m;
    }
    if (n) sc->heap[i] = last;
    return top;
}

static void add_bigram(const hl_tokenizer *t, scratch *sc, const char *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const sym *a = &sc->syms[l], *b = &sc->syms[r];
    if (a->n > t->max_merge_part || b->n > t->max_merge_part) return;
    int32_t rank = tok_merge_rank(t, w + a->off, a->n, w + b->off, b->n);
    if (rank < 0) return;
    bigram g = {rank, l, r, a->n, b->n};
    heap_push(sc, g);
}

static void emit_bytes_fallback(const hl_tokenizer *t, const char *s, size_t n, tok_out *o) {
    for (size_t j = 0; j < n; j++) {
        int32_t id = -1;
        if (t->byte_encode) {
            id = tok_vocab_find(t, s + j, 1);
        } else {
            id = t->byte_tok[(uint8_t)s[j]];
        }
        if (id >= 0) tok_out_push(o, id);
    }
}

static void bpe_word(const hl_tokenizer *t, scratch *sc, const char *w, size_t n, tok_out *o) {
    if (t->ignore_merges) {
        int32_t id = tok_vocab_find(t, w, n);
        if (id >= 0) {
            tok_out_push(o, id);
            return;
        }
    }
    if (t->gemma4) {
        bool all_nl = true;
        for (size_t i = 0; i < n && all_nl; i++) all_nl = w[i] == '\n';
        if (all_nl) {
            int32_t id = tok_vocab_find(t, w, n);
            if (id >= 0) {
                tok_out_push(o, id);
                return;
            }
        }
    }
    sc->nsyms = 0;
    sc->nheap = 0;
    if (n > sc->capsyms) {
        sym *r = realloc(sc->syms, n * sizeof *r);
        if (!r) {
            sc->oom = true;
            return;
        }
        sc->syms = r;
        sc->capsyms = n;
    }
    for (size_t off = 0; off < n;) {
        size_t cl = tok_utf8_len((unsigned char)w[off]);
        if (cl > n - off) cl = n - off;
        sym *s = &sc->syms[sc->nsyms];
        s->off = (uint32_t)off;
        s->n = (uint32_t)cl;
        s->prev = (int32_t)sc->nsyms - 1;
        off += cl;
        s->next = off == n ? -1 : (int32_t)sc->nsyms + 1;
        sc->nsyms++;
    }
    for (size_t i = 1; i < sc->nsyms; i++) add_bigram(t, sc, w, (int32_t)i - 1, (int32_t)i);
    while (sc->nheap > 0 && !sc->oom) {
        bigram g = heap_pop(sc);
        sym *l = &sc->syms[g.left], *r = &sc->syms[g.right];
        if (l->n == 0 || r->n == 0 || l->n != g.ln || r->n != g.rn || l->next != g.right) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sc->syms[r->next].prev = g.left;
        add_bigram(t, sc, w, l->prev, g.left);
        add_bigram(t, sc, w, g.left, l->next);
    }
    if (sc->oom) return;
    for (int32_t i = 0; i >= 0 && (size_t)i < sc->nsyms; i = sc->syms[i].next) {
        const sym *s = &sc->syms[i];
        if (s->n == 0) continue;
        int32_t id = tok_vocab_find(t, w + s->off, s->n);
        if (id >= 0)
            tok_out_push(o, id);
        else
            emit_bytes_fallback(t, w + s->off, s->n, o);
    }
}

/* Maps invalid UTF-8 to U+FFFD (one per bad byte), as llama.cpp does. */
static char *sanitize_utf8(const char *s, size_t n, size_t *out_n) {
    bool ok = true;
    for (size_t i = 0; i < n && ok;) {
        size_t j = i;
        uint32_t cp = tok_utf8_decode(s, n, &j);
        if (cp == 0xFFFD && !(j - i == 3 && (unsigned char)s[i] == 0xEF)) ok = false;
        i = j;
    }
    char *r = malloc(ok ? (n ? n : 1) : n * 3 + 1);
    if (!r) return NULL;
    if (ok) {
        memcpy(r, s, n);
        *out_n = n;
        return r;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = tok_utf8_decode(s, n, &i);
        o += (size_t)tok_utf8_encode(cp, r + o);
    }
    *out_n = o;
    return r;
}

void tok_bpe_encode(const hl_tokenizer *t, const char *text, size_t n, tok_out *o) {
    size_t tn = 0;
    char *tx = sanitize_utf8(text, n, &tn);
    if (!tx) {
        o->oom = true;
        return;
    }
    seglist a = {0}, b = {0};
    scratch sc = {0};
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    pcre2_jit_stack *js = NULL;
    bool ok = seg_push(&a, 0, tn);
    if (ok && t->n_splits > 0) {
        md = pcre2_match_data_create(1, NULL);
        mc = pcre2_match_context_create(NULL);
        js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        ok = md && mc && js;
        if (ok) pcre2_jit_stack_assign(mc, NULL, js);
    }
    for (int k = 0; ok && k < t->n_splits; k++) {
        b.n = 0;
        for (size_t i = 0; ok && i < a.n; i++) {
            switch (t->splits[k].kind) {
            case TOK_SPLIT_REGEX:
                ok = split_regex(t->splits[k].re, tx, &b, a.v[i], md, mc);
                break;
            case TOK_SPLIT_DIGITS3:
                ok = split_digits3(t->splits[k].re, tx, &b, a.v[i], md, mc);
                break;
            case TOK_SPLIT_NEWLINES:
                ok = split_newlines(tx, &b, a.v[i]);
                break;
            }
        }
        seglist tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t i = 0; ok && i < a.n && !o->oom; i++) {
        const char *w = tx + a.v[i].off;
        size_t wn = a.v[i].len;
        if (t->byte_encode) {
            if (wn * 2 > sc.capword) {
                char *r = realloc(sc.word, wn * 2);
                if (!r) {
                    ok = false;
                    break;
                }
                sc.word = r;
                sc.capword = wn * 2;
            }
            size_t m = 0;
            for (size_t j = 0; j < wn; j++) {
                uint8_t c = (uint8_t)w[j];
                memcpy(sc.word + m, t->b2u[c], t->b2u_len[c]);
                m += t->b2u_len[c];
            }
            bpe_word(t, &sc, sc.word, m, o);
        } else {
            bpe_word(t, &sc, w, wn, o);
        }
        if (sc.oom) ok = false;
    }
    if (!ok) o->oom = true;
    free(a.v);
    free(b.v);
    free(sc.syms);
    free(sc.heap);
    free(sc.word);
    if (md) pcre2_match_data_free(md);
    if (mc) pcre2_match_context_free(mc);
    if (js) pcre2_jit_stack_free(js);
    free(tx);
}
