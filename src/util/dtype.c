/* dtype.c - the weight type table; see dtype.h. */
#include "dtype.h"

#include <ctype.h>
#include <string.h>

static const hl_dtype_traits TRAITS[HL_DTYPE_COUNT] = {
    [HL_F32] = {"F32", 1, 4, true},
    [HL_F16] = {"F16", 1, 2, true},
    [HL_Q4_0] = {"Q4_0", 32, 18, true},
    [HL_Q4_1] = {"Q4_1", 32, 20, true},
    [HL_Q5_0] = {"Q5_0", 32, 22, true},
    [HL_Q5_1] = {"Q5_1", 32, 24, true},
    [HL_Q8_0] = {"Q8_0", 32, 34, true},
    [HL_Q8_1] = {"Q8_1", 32, 36, false},
    [HL_Q2_K] = {"Q2_K", 256, 84, true},
    [HL_Q3_K] = {"Q3_K", 256, 110, true},
    [HL_Q4_K] = {"Q4_K", 256, 144, true},
    [HL_Q5_K] = {"Q5_K", 256, 176, true},
    [HL_Q6_K] = {"Q6_K", 256, 210, true},
    [HL_Q8_K] = {"Q8_K", 256, 292, false},
    [HL_IQ2_XXS] = {"IQ2_XXS", 256, 66, false},
    [HL_IQ2_XS] = {"IQ2_XS", 256, 74, false},
    [HL_IQ3_XXS] = {"IQ3_XXS", 256, 98, false},
    [HL_IQ1_S] = {"IQ1_S", 256, 50, false},
    [HL_IQ4_NL] = {"IQ4_NL", 32, 18, false},
    [HL_IQ3_S] = {"IQ3_S", 256, 110, false},
    [HL_IQ2_S] = {"IQ2_S", 256, 82, false},
    [HL_IQ4_XS] = {"IQ4_XS", 256, 136, false},
    [HL_I8] = {"I8", 1, 1, false},
    [HL_I16] = {"I16", 1, 2, false},
    [HL_I32] = {"I32", 1, 4, false},
    [HL_I64] = {"I64", 1, 8, false},
    [HL_F64] = {"F64", 1, 8, false},
    [HL_IQ1_M] = {"IQ1_M", 256, 56, false},
    [HL_BF16] = {"BF16", 1, 2, true},
    [HL_TQ1_0] = {"TQ1_0", 256, 54, false},
    [HL_TQ2_0] = {"TQ2_0", 256, 66, false},
    [HL_MXFP4] = {"MXFP4", 32, 17, false},
};

const hl_dtype_traits *hl_dtype_get(uint32_t t) {
    if (t >= HL_DTYPE_COUNT || !TRAITS[t].name) return NULL;
    return &TRAITS[t];
}

const char *hl_dtype_name(uint32_t t) {
    const hl_dtype_traits *tr = hl_dtype_get(t);
    return tr ? tr->name : "unknown";
}

int hl_dtype_from_name(const char *name) {
    for (int t = 0; t < HL_DTYPE_COUNT; t++) {
        const char *n = TRAITS[t].name;
        if (!n) continue;
        size_t i = 0;
        while (n[i] && name[i] && toupper((unsigned char)name[i]) == n[i]) i++;
        if (!n[i] && !name[i]) return t;
    }
    return -1;
}

size_t hl_dtype_row_size(uint32_t t, uint64_t n) {
    const hl_dtype_traits *tr = hl_dtype_get(t);
    if (!tr || n % tr->block_elems) return 0;
    return (size_t)(n / tr->block_elems) * tr->block_bytes;
}
