/* fuzz_config.c - libFuzzer target: loads arbitrary bytes as a models.yaml
 * (src/router/config.h) and checks what comes back.
 *
 * Invariants (abort on violation): a failure leaves *out NULL and a
 * non-empty message; a success has 1..1024 models, each with a non-empty
 * unique id, an absolute model_path, non-NULL provider / cache_type /
 * backend, values inside the documented ranges, and a default_model (when
 * given) that hl_config_find resolves to an enabled model.
 *
 *   make fuzz && build-fuzz/fuzz_config fuzz/corpus/config
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/router/config.h"

static void check(bool ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_config *c = (hl_config *)&c;
    hl_err e = {{0}};
    if (hl_config_parse(&c, "/fuzz/models.yaml", (const char *)data, size, &e) < 0) {
        check(c == NULL && e.msg[0] != 0);
        return 0;
    }
    check(c && c->n_models >= 1 && c->n_models <= 1024 && c->max_loaded_models >= 1);
    for (int i = 0; i < c->n_models; i++) {
        const hl_model_config *m = &c->models[i];
        check(m->id && m->id[0] && m->model_path && m->model_path[0] == '/');
        check(m->provider && m->cache_type && m->backend);
        check(m->temperature >= 0 && m->temperature <= 2 && m->top_p >= 0 && m->top_p <= 1);
        check(m->min_p >= 0 && m->min_p <= 1 && m->top_k >= 0 && m->repetition_penalty >= 0);
        check(m->parallel >= 0 && m->parallel <= 64 && m->n_ctx >= 0 && m->n_gpu_layers >= -1);
        check((m->set & HL_CFG_KV_BITS) ? (m->kv_bits == 4 || m->kv_bits == 8) : m->kv_bits == 0);
        check(m->n_tags >= 0 && (m->n_tags == 0 || m->tags));
        for (int t = 0; t < m->n_tags; t++) check(m->tags[t] != NULL);
        for (int j = 0; j < i; j++) check(strcmp(c->models[j].id, m->id) != 0);
        check(!m->enabled || hl_config_find(c, m->id) == m);
    }
    if (c->default_model) check(hl_config_find(c, c->default_model) != NULL);
    hl_config_free(c);
    return 0;
}
