/* test_config.c - the models.yaml loader (src/router/config.h) and the
 * `import` command that writes one (src/cli/cmd_import.c): a full valid file,
 * defaults, YAML 1.1 scalar typing, every error class with its line and
 * suggestion, the bounds, path resolution, and an import whose output loads.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/cli/cli.h"
#include "../../src/gguf/gguf.h"
#include "../../src/router/config.h"
#include "test.h"

/* ---- helpers ---- */

/* Parses yaml as the file /srv/heylook/models.yaml; NULL (and a failure) if it does not load. */
static hl_config *load_ok(const char *file, int line, const char *yaml) {
    hl_config *c = NULL;
    hl_err e = {{0}};
    hl_test_checks++;
    if (hl_config_parse(&c, "/srv/heylook/models.yaml", yaml, strlen(yaml), &e) < 0) {
        hl_test_fail(file, line, "did not load: %s", e.msg);
        return NULL;
    }
    return c;
}
#define LOAD_OK(yaml) load_ok(__FILE__, __LINE__, yaml)

/* The load must fail, *out must stay NULL, and the message must hold every needle. */
static void check_err(const char *file, int line, const char *yaml, const char *const *needles) {
    hl_config *c = (hl_config *)&c;
    hl_err e = {{0}};
    hl_test_checks++;
    if (hl_config_parse(&c, "t.yaml", yaml, strlen(yaml), &e) == 0) {
        hl_test_fail(file, line, "loaded, expected an error: %s", yaml);
        hl_config_free(c);
        return;
    }
    if (c) hl_test_fail(file, line, "*out is not NULL after a failure");
    for (int i = 0; needles[i]; i++)
        if (!strstr(e.msg, needles[i]))
            hl_test_fail(file, line, "\"%s\" lacks \"%s\"", e.msg, needles[i]);
}
#define CHECK_ERR(yaml, ...)                                                                       \
    check_err(__FILE__, __LINE__, yaml, (const char *const[]){__VA_ARGS__, NULL})

/* One model whose config holds `extra` (a flow-mapping fragment). */
static const char *one(const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "models:\n  - id: m\n    config: {model_path: m.gguf, %s}\n", extra);
    return buf;
}

/* ---- valid files ---- */

TEST(config_full_file) {
    const char *yaml = "# every key\n"
                       "default_model: qwen\n"
                       "max_loaded_models: 3\n"
                       "models:\n"
                       "  - id: qwen\n"
                       "    provider: llama_cpp\n"
                       "    enabled: true\n"
                       "    description: \"Qwen 0.5B: fast\"\n"
                       "    tags: [chat, 2024, 'q4']\n"
                       "    config:\n"
                       "      model_path: models/qwen.gguf\n"
                       "      vision: false\n"
                       "      mmproj_path: /abs/mmproj.gguf\n"
                       "      temperature: 0.7\n"
                       "      top_p: 0.95\n"
                       "      top_k: 40\n"
                       "      min_p: 0.05\n"
                       "      max_tokens: 512\n"
                       "      repetition_penalty: 1.1\n"
                       "      repetition_context_size: 64\n"
                       "      cache_type: quantized\n"
                       "      kv_bits: 4\n"
                       "      kv_group_size: 32\n"
                       "      quantized_kv_start: 512\n"
                       "      max_kv_size: 2048\n"
                       "      draft_model_path: ./draft.gguf\n"
                       "      num_draft_tokens: 4\n"
                       "      use_generation_lock: yes\n"
                       "      n_ctx: 4_096\n"
                       "      n_gpu_layers: -1\n"
                       "      n_batch: 256\n"
                       "      n_threads: 8\n"
                       "      use_mmap: false\n"
                       "      use_mlock: On\n"
                       "      chat_format: jinja\n"
                       "      chat_format_template: ../templates/qwen.jinja\n"
                       "      parallel: 8\n"
                       "      backend: cuda\n"
                       "      device: 1\n"
                       "      pinned: true\n"
                       "      idle_unload_s: 600\n"
                       "  - id: small\n"
                       "    enabled: false\n"
                       "    config:\n"
                       "      model_path: /m/small.gguf\n";
    hl_config *c = LOAD_OK(yaml);
    if (!c) return;
    CHECK(!strcmp(c->path, "/srv/heylook/models.yaml"));
    CHECK(!strcmp(c->default_model, "qwen"));
    CHECK_EQ_INT(c->max_loaded_models, 3);
    CHECK_EQ_INT(c->n_models, 2);
    const hl_model_config *m = &c->models[0];
    CHECK(!strcmp(m->id, "qwen") && !strcmp(m->provider, "llama_cpp") && m->enabled);
    CHECK(!strcmp(m->description, "Qwen 0.5B: fast"));
    CHECK_EQ_INT(m->n_tags, 3);
    if (m->n_tags == 3)
        CHECK(!strcmp(m->tags[0], "chat") && !strcmp(m->tags[1], "2024") &&
              !strcmp(m->tags[2], "q4"));
    CHECK(!strcmp(m->model_path, "/srv/heylook/models/qwen.gguf"));
    CHECK(!m->vision && !strcmp(m->mmproj_path, "/abs/mmproj.gguf"));
    CHECK_NEAR(m->temperature, 0.7, 1e-6);
    CHECK_NEAR(m->top_p, 0.95, 1e-6);
    CHECK_EQ_INT(m->top_k, 40);
    CHECK_NEAR(m->min_p, 0.05, 1e-6);
    CHECK_EQ_INT(m->max_tokens, 512);
    CHECK_NEAR(m->repetition_penalty, 1.1, 1e-6);
    CHECK_EQ_INT(m->repetition_context_size, 64);
    CHECK(!strcmp(m->cache_type, "quantized"));
    CHECK_EQ_INT(m->kv_bits, 4);
    CHECK_EQ_INT(m->kv_group_size, 32);
    CHECK_EQ_INT(m->quantized_kv_start, 512);
    CHECK_EQ_INT(m->max_kv_size, 2048);
    CHECK(!strcmp(m->draft_model_path, "/srv/heylook/draft.gguf"));
    CHECK_EQ_INT(m->num_draft_tokens, 4);
    CHECK(m->use_generation_lock);
    CHECK_EQ_INT(m->n_ctx, 4096);
    CHECK_EQ_INT(m->n_gpu_layers, -1);
    CHECK_EQ_INT(m->n_batch, 256);
    CHECK_EQ_INT(m->n_threads, 8);
    CHECK(!m->use_mmap && m->use_mlock);
    CHECK(!strcmp(m->chat_format, "jinja"));
    CHECK(!strcmp(m->chat_format_template, "/srv/heylook/../templates/qwen.jinja"));
    CHECK_EQ_INT(m->parallel, 8);
    CHECK(!strcmp(m->backend, "cuda") && m->device == 1 && m->pinned);
    CHECK_EQ_INT(m->idle_unload_s, 600);
    CHECK_EQ_INT(m->line, 5);
    uint32_t all = HL_CFG_TEMPERATURE | HL_CFG_TOP_P | HL_CFG_TOP_K | HL_CFG_MIN_P |
                   HL_CFG_MAX_TOKENS | HL_CFG_REPETITION_PENALTY | HL_CFG_REPETITION_CONTEXT_SIZE |
                   HL_CFG_CACHE_TYPE | HL_CFG_KV_BITS | HL_CFG_KV_GROUP_SIZE |
                   HL_CFG_QUANTIZED_KV_START | HL_CFG_MAX_KV_SIZE | HL_CFG_DRAFT_MODEL_PATH |
                   HL_CFG_NUM_DRAFT_TOKENS | HL_CFG_VISION | HL_CFG_MMPROJ_PATH |
                   HL_CFG_N_GPU_LAYERS | HL_CFG_CHAT_FORMAT;
    CHECK_EQ_INT(m->set, all);
    CHECK(hl_config_find(c, "qwen") == m);
    CHECK(hl_config_find(c, "small") == NULL); /* disabled */
    CHECK(hl_config_find(c, "nope") == NULL);
    CHECK(!c->models[1].enabled && c->models[1].line == 42);
    hl_config_free(c);
}

TEST(config_defaults) {
    hl_config *c = LOAD_OK("models:\n- id: a\n  config:\n    model_path: a.gguf\n");
    if (!c) return;
    const hl_model_config *m = &c->models[0];
    CHECK(c->default_model == NULL && c->max_loaded_models == 2);
    CHECK(m->enabled && !strcmp(m->provider, "gguf") && !strcmp(m->cache_type, "standard"));
    CHECK(!strcmp(m->backend, "auto") && m->device == 0);
    CHECK(m->use_mmap && !m->use_mlock && !m->pinned);
    CHECK(m->n_gpu_layers == -1 && m->parallel == 0 && m->n_ctx == 0 && m->set == 0);
    CHECK(m->description == NULL && m->n_tags == 0 && m->mmproj_path == NULL &&
          m->chat_format_template == NULL);
    hl_config_free(c);
    /* a null value is the key not given */
    c = LOAD_OK("default_model:\nmodels:\n- id: a\n  description: ~\n  tags: null\n"
                "  config: {model_path: a.gguf, temperature: , top_k: null}\n");
    if (!c) return;
    CHECK(c->default_model == NULL && c->models[0].description == NULL && c->models[0].set == 0);
    hl_config_free(c);
}

TEST(config_yaml11_scalars) {
    const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    const char *no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    char extra[64];
    for (int i = 0; i < 9; i++) {
        snprintf(extra, sizeof extra, "pinned: %s, use_mmap: %s", yes[i], no[i]);
        hl_config *c = LOAD_OK(one(extra));
        if (c) CHECK(c->models[0].pinned && !c->models[0].use_mmap);
        hl_config_free(c);
    }
    CHECK_ERR(one("pinned: \"true\""), "'pinned'", "true or false", "the string \"true\"");
    CHECK_ERR(one("pinned: 1"), "must be true or false, got the number 1");
    CHECK_ERR(one("pinned: y"), "true or false"); /* PyYAML reads y as a string */
    /* numbers */
    hl_config *c =
        LOAD_OK(one("temperature: .5, top_p: 1, min_p: 1e-2, repetition_penalty: +1.25"));
    if (c) {
        CHECK_NEAR(c->models[0].temperature, 0.5, 1e-7);
        CHECK_NEAR(c->models[0].top_p, 1, 0);
        CHECK_NEAR(c->models[0].min_p, 0.01, 1e-7);
        CHECK_NEAR(c->models[0].repetition_penalty, 1.25, 0);
    }
    hl_config_free(c);
    CHECK_ERR(one("temperature: .inf"), "must be a number");
    CHECK_ERR(one("temperature: .nan"), "must be a number");
    CHECK_ERR(one("n_ctx: 0755"), "'n_ctx'", "must be an integer", "0755");
    CHECK_ERR(one("n_ctx: 0x10"), "must be an integer");
    CHECK_ERR(one("n_ctx: 1:30"), "must be an integer");
    CHECK_ERR(one("n_ctx: 2048.0"), "must be an integer, got the number 2048.0");
    CHECK_ERR(one("n_ctx: \"2048\""), "must be an integer, got the string \"2048\"");
    /* strings: numbers kept as written, bare booleans refused */
    c = LOAD_OK("models:\n- id: 1.10\n  description: 42\n  config: {model_path: 007}\n");
    if (c) CHECK(!strcmp(c->models[0].id, "1.10") && !strcmp(c->models[0].description, "42"));
    hl_config_free(c);
    CHECK_ERR("models:\n- id: no\n  config: {model_path: a}\n", "t.yaml:2:", "'id'",
              "the boolean no", "quote it");
    c = LOAD_OK("models:\n- id: 'no'\n  config: {model_path: a}\n");
    if (c) CHECK(!strcmp(c->models[0].id, "no"));
    hl_config_free(c);
}

/* ---- errors ---- */

TEST(config_syntax_errors_name_the_line) {
    CHECK_ERR("models:\n  - id: a\n    config:\n      model_path: a.gguf\n     bad: [\n",
              "t.yaml:5:", "YAML syntax error");
    CHECK_ERR("models: [\n", "t.yaml:", "YAML syntax error");
    CHECK_ERR("models:\n\t- id: a\n", "t.yaml:2:", "YAML syntax error");
    CHECK_ERR("models: \"unterminated\n", "YAML syntax error");
    CHECK_ERR("a: \xff\n", "t.yaml:1:", "UTF-8");
}

TEST(config_unknown_keys_suggest_the_closest) {
    CHECK_ERR("modles:\n- id: a\n", "t.yaml:1:", "unknown key 'modles' at the top level",
              "did you mean 'models'");
    CHECK_ERR("models:\n- id: a\n  enabeld: true\n  config: {model_path: a}\n",
              "t.yaml:3:", "unknown key 'enabeld' in model 'a'", "did you mean 'enabled'");
    CHECK_ERR("models:\n- id: a\n  config:\n    model_path: a\n    tempreature: 1\n",
              "t.yaml:5:", "unknown key 'tempreature' in the config of model 'a'",
              "did you mean 'temperature'");
    CHECK_ERR(one("Model_Path: x"), "did you mean 'model_path'");
    CHECK_ERR(one("n-ctx: 1"), "did you mean 'n_ctx'");
    CHECK_ERR(one("kv_bit: 4"), "did you mean 'kv_bits'");
    /* a key at the wrong level says where it belongs */
    CHECK_ERR("models:\n- id: a\n  temperature: 1\n  config: {model_path: a}\n",
              "t.yaml:3:", "it belongs under a model's 'config:'");
    CHECK_ERR("models:\n- id: a\n  config: {model_path: a, enabled: true}\n",
              "it belongs in a model entry");
    CHECK_ERR("max_loaded_models: 1\nid: a\nmodels: []\n",
              "t.yaml:2:", "it belongs in a model entry");
    CHECK_ERR(one("default_model: a"), "it belongs at the top level");
    /* nothing close: the valid keys are listed */
    CHECK_ERR("colour: red\nmodels: []\n", "unknown key 'colour'",
              "valid keys here: models, default_model, max_loaded_models");
    CHECK_ERR("models:\n- id: a\n  zzz: 1\n", "valid keys here: id, provider");
    /* a key that is not a plain name */
    CHECK_ERR("models:\n- id: a\n  ? [x]\n  : 1\n", "t.yaml:3:", "keys must be plain names");
    CHECK_ERR("models:\n- id: a\n  \"id\\0x\": 1\n", "unknown key 'id?x'");
}

TEST(config_wrong_types) {
    CHECK_ERR(one("temperature: hot"), "'temperature' in the config of model 'm' must be a number",
              "got the string \"hot\"");
    CHECK_ERR(one("temperature: \"0.7\""), "must be a number, got the string \"0.7\"");
    CHECK_ERR(one("max_tokens: [1]"), "'max_tokens'", "must be an integer, got a list");
    CHECK_ERR(one("cache_type: {a: 1}"), "'cache_type'", "got a mapping");
    CHECK_ERR("models:\n- {id: a, config: {model_path: [a]}}\n", "'model_path'",
              "must be a string, got a list");
    CHECK_ERR("models: {id: a}\n",
              "t.yaml:1:", "'models' at the top level must be a list of models");
    CHECK_ERR("models:\n- just-a-name\n", "t.yaml:2:", "model #1 must be a mapping",
              "the string \"just-a-name\"");
    CHECK_ERR("models:\n- id: a\n  config: a.gguf\n", "'config' in model 'a' must be a mapping");
    CHECK_ERR("models:\n- id: a\n  tags: chat\n  config: {model_path: a}\n", "'tags'",
              "a list of strings");
    CHECK_ERR("models:\n- id: a\n  tags: [chat, [x]]\n  config: {model_path: a}\n", "'tags'",
              "got a list");
    CHECK_ERR("models:\n- id: a\n  tags: [yes]\n  config: {model_path: a}\n", "'tags'",
              "the boolean yes");
    CHECK_ERR("max_loaded_models: two\nmodels:\n- {id: a, config: {model_path: a}}\n",
              "t.yaml:1:", "'max_loaded_models' at the top level must be an integer");
    CHECK_ERR("- a\n- b\n", "t.yaml:1:", "the top level must be a mapping", "got a list");
    CHECK_ERR("models:\n- id: a\n  config: {model_path: \"a\\0b\"}\n", "contains a NUL character");
    CHECK_ERR("models:\n- id: \"a\\tb\"\n  config: {model_path: a}\n", "control character");
    CHECK_ERR("models:\n- id: ''\n  config: {model_path: a}\n", "'id'", "is empty");
    CHECK_ERR("models:\n- {id: a, config: {model_path: ''}}\n", "'model_path'", "is empty");
}

TEST(config_ranges) {
    struct {
        const char *extra, *msg;
    } bad[] = {
        {"temperature: 2.5",
         "'temperature' in the config of model 'm' is 2.5: it must be from 0 to 2"},
        {"temperature: -0.1", "from 0 to 2"},
        {"top_p: 0",
         "'top_p' in the config of model 'm' is 0: it must be greater than 0 and at most 1"},
        {"top_p: 1.01", "greater than 0 and at most 1"},
        {"min_p: 1.5", "from 0 to 1"},
        {
            "top_k: -1",
            "'top_k'",
        },
        {"max_tokens: 0", "at least 1"},
        {"repetition_penalty: 0", "greater than 0"},
        {"repetition_context_size: 65537", "from 1 to 65536"},
        {"repetition_context_size: 0", "from 1 to 65536"},
        {"kv_bits: 6", "'kv_bits' in the config of model 'm' is 6: it must be one of 4, 8"},
        {"kv_group_size: 16", "one of 32, 64, 128"},
        {"kv_group_size: 96", "one of 32, 64, 128"},
        {"top_p: 1e-50", "greater than 0"},
        {"cache_type: quantised",
         "one of standard, rotating, quantized (did you mean 'quantized'?)"},
        {"cache_type: Standard", "did you mean 'standard'"},
        {"backend: gpu",
         "'backend' in the config of model 'm' is 'gpu': it must be one of auto, cpu, cuda"},
        {"backend: CUDA", "did you mean 'cuda'"},
        {"backend: 1", "one of auto, cpu, cuda"},
        {"device: -1", "'device' in the config of model 'm' is -1: it must be at least 0"},
        {"device: cuda0", "'device' in the config of model 'm' must be an integer"},
        {"parallel: 0", "from 1 to 64"},
        {"parallel: 65", "from 1 to 64"},
        {"n_ctx: -1", "at least 0"},
        {"n_ctx: 99999999999", "'n_ctx' in the config of model 'm' is 99999999999"},
        {"n_gpu_layers: -2", "at least -1"},
        {"num_draft_tokens: 33", "from 1 to 32"},
        {"max_kv_size: 0", "at least 1"},
        {"quantized_kv_start: -5", "at least 0"},
        {"idle_unload_s: -1", "at least 0"},
        {"n_threads: 5000", "from 0 to 4096"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_ERR(one(bad[i].extra), "t.yaml:3:", bad[i].msg);
    CHECK_ERR("max_loaded_models: 0\nmodels:\n- {id: a, config: {model_path: a}}\n",
              "t.yaml:1:", "from 1 to 1024");
    CHECK_ERR("models:\n- id: a\n  provider: mlxx\n  config: {model_path: a}\n",
              "one of gguf, llama_cpp, mlx", "did you mean 'mlx'");
    /* the edges are accepted */
    hl_config *c =
        LOAD_OK(one("temperature: 0, top_p: 1, min_p: 0, top_k: 0, repetition_context_size: 65536, "
                    "parallel: 64, kv_group_size: 128, kv_bits: +8, n_gpu_layers: -1, n_ctx: 0"));
    hl_config_free(c);
    c = LOAD_OK(one(
        "temperature: 2, min_p: 1, parallel: 1, repetition_context_size: 1, cache_type: rotating"));
    hl_config_free(c);
}

TEST(config_backend) {
    static const char *const names[] = {"auto", "cpu", "cuda"};
    char extra[64];
    for (int i = 0; i < 3; i++) {
        snprintf(extra, sizeof extra, "backend: %s, device: %d", names[i], i);
        hl_config *c = LOAD_OK(one(extra));
        if (!c) continue;
        CHECK(!strcmp(c->models[0].backend, names[i]) && c->models[0].device == i);
        hl_config_free(c);
    }
    /* a null backend is the default */
    hl_config *c = LOAD_OK(one("backend: ~, device: 7"));
    if (c) CHECK(!strcmp(c->models[0].backend, "auto") && c->models[0].device == 7);
    hl_config_free(c);
    CHECK_ERR(one("backend: cpu, backend: cuda"), "duplicate key 'backend'");
    CHECK_ERR(one("devcie: 1"), "unknown key 'devcie'", "did you mean 'device'");
    CHECK_ERR("models:\n- id: a\n  backend: cuda\n  config: {model_path: a}\n",
              "unknown key 'backend'", "it belongs under a model's 'config:'");
}

TEST(config_duplicates_and_missing) {
    CHECK_ERR("models:\n- {id: a, config: {model_path: a}}\n- {id: b, config: {model_path: b}}\n"
              "- {id: a, config: {model_path: c}}\n",
              "t.yaml:4:", "duplicate model id 'a' (first used at line 2)");
    CHECK_ERR(
        "models:\n- id: a\n  config:\n    model_path: a\n    n_ctx: 1\n    n_ctx: 2\n",
        "t.yaml:6:", "duplicate key 'n_ctx' in the config of model 'a' (first given at line 5)");
    CHECK_ERR("models:\n- {id: a, config: {model_path: a}}\nmodels:\n- {id: b, config: "
              "{model_path: b}}\n",
              "t.yaml:3:", "duplicate key 'models' at the top level");
    CHECK_ERR("models:\n- id: a\n  id: b\n  config: {model_path: a}\n",
              "t.yaml:3:", "duplicate key 'id'");
    CHECK_ERR("models:\n- id: a\n  config: {n_ctx: 1}\n",
              "t.yaml:2:", "model 'a' has no 'model_path'");
    CHECK_ERR("models:\n- id: a\n", "model 'a' has no 'model_path'");
    CHECK_ERR("models:\n- {id: a, config: {model_path: a}}\n- config: {model_path: b}\n",
              "t.yaml:3:", "model #2 has no 'id'");
    CHECK_ERR("max_loaded_models: 1\n", "no 'models:' list");
    CHECK_ERR("models:\n", "no 'models:' list");
    CHECK_ERR("models: []\n", "t.yaml:1:", "'models' is empty");
    CHECK_ERR("", "t.yaml: the file is empty");
    CHECK_ERR("# only a comment\n", "the file is empty");
}

TEST(config_default_model) {
    const char *models = "models:\n- {id: qwen, config: {model_path: a}}\n"
                         "- {id: old, enabled: false, config: {model_path: b}}\n";
    char y[512];
    snprintf(y, sizeof y, "default_model: qwen\n%s", models);
    hl_config *c = LOAD_OK(y);
    if (c) CHECK(!strcmp(c->default_model, "qwen"));
    hl_config_free(c);
    snprintf(y, sizeof y, "default_model: qwne\n%s", models);
    CHECK_ERR(y, "t.yaml:1:", "default_model 'qwne' names no model", "did you mean 'qwen'");
    snprintf(y, sizeof y, "default_model: llama\n%s", models);
    CHECK_ERR(y, "default_model 'llama' names no model in this file");
    snprintf(y, sizeof y, "%sdefault_model: old\n", models);
    CHECK_ERR(y, "t.yaml:4:", "default_model 'old' is disabled (enabled: false, line 3)");
}

TEST(config_refuses_unsupported_yaml) {
    CHECK_ERR("models:\n- &m {id: a, config: {model_path: a}}\n", "t.yaml:2:", "anchors");
    CHECK_ERR("x: &a 1\nmodels: *a\n", "anchors");
    CHECK_ERR("models:\n- id: a\n  config: {model_path: a, n_ctx: !!int 5}\n", "t.yaml:3:", "tags");
    CHECK_ERR("models:\n- {id: a, config: {model_path: a}}\n---\nmodels: []\n",
              "t.yaml:3:", "a second YAML document");
    /* bounds: nesting, size, models */
    char deep[200] = "models: ";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    CHECK_ERR(deep, "nested deeper than 16 levels");
    size_t big = (4u << 20) + 1;
    char *text = malloc(big);
    if (text) {
        memset(text, ' ', big);
        hl_config *c = NULL;
        hl_err e = {{0}};
        CHECK(hl_config_parse(&c, "big.yaml", text, big, &e) < 0 && c == NULL);
        CHECK_STR_CONTAINS(e.msg, "at most 4 MiB");
        free(text);
    }
    size_t vn = 200001 * 2 + 16;
    char *values = malloc(vn);
    if (values) {
        size_t o = (size_t)snprintf(values, vn, "models: [");
        for (int i = 0; i < 200001; i++) values[o++] = '1', values[o++] = ',';
        strcpy(values + o - 1, "]\n");
        CHECK_ERR(values, "t.yaml:1:", "more than 200000 YAML values");
        free(values);
    }
    size_t cap = 1100 * 48;
    char *many = malloc(cap);
    if (many) {
        size_t o = (size_t)snprintf(many, cap, "models:\n");
        for (int i = 0; i < 1025; i++)
            o += (size_t)snprintf(many + o, cap - o, "- {id: m%d, config: {model_path: a}}\n", i);
        CHECK_ERR(many, "t.yaml:2:", "1025 entries; at most 1024");
        free(many);
    }
}

TEST(config_paths) {
    /* ~ expands $HOME; absolute stays; a name without a folder resolves against the current one */
    const char *home = getenv("HOME");
    char *saved = home ? strdup(home) : NULL;
    setenv("HOME", "/home/tester", 1);
    hl_config *c =
        LOAD_OK("models:\n- {id: a, config: {model_path: ~/m/a.gguf, mmproj_path: /x/p.gguf, "
                "draft_model_path: '~', chat_format_template: t/c.jinja}}\n");
    if (c) {
        CHECK(!strcmp(c->models[0].model_path, "/home/tester/m/a.gguf"));
        CHECK(!strcmp(c->models[0].mmproj_path, "/x/p.gguf"));
        CHECK(!strcmp(c->models[0].draft_model_path, "/home/tester"));
        CHECK(!strcmp(c->models[0].chat_format_template, "/srv/heylook/t/c.jinja"));
    }
    hl_config_free(c);
    unsetenv("HOME");
    CHECK_ERR(one("draft_model_path: ~/d.gguf"), "$HOME is not set");
    if (saved) setenv("HOME", saved, 1);
    free(saved);
    char cwd[1024], want[1100];
    hl_err e = {{0}};
    const char *y = "models:\n- {id: a, config: {model_path: a.gguf}}\n";
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(hl_config_parse(&c, "models.yaml", y, strlen(y), &e) == 0);
    snprintf(want, sizeof want, "%s/a.gguf", cwd);
    if (c) CHECK(!strcmp(c->models[0].model_path, want));
    hl_config_free(c);
    CHECK(hl_config_parse(&c, "conf/models.yaml", y, strlen(y), &e) == 0);
    snprintf(want, sizeof want, "%s/conf/a.gguf", cwd);
    if (c) CHECK(!strcmp(c->models[0].model_path, want));
    hl_config_free(c);
    CHECK(hl_config_parse(&c, "/models.yaml", y, strlen(y), &e) == 0);
    if (c) CHECK(!strcmp(c->models[0].model_path, "/a.gguf"));
    hl_config_free(c);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

TEST(config_load_file) {
    const char *dir = hl_test_tmp("cfgdir");
    mkdir(dir, 0755);
    char path[600], want[600];
    snprintf(path, sizeof path, "%s/models.yaml", dir);
    write_text(path, "models:\n  - id: a\n    config:\n      model_path: sub/a.gguf\n");
    hl_config *c = NULL;
    hl_err e = {{0}};
    CHECK(hl_config_load(&c, path, &e) == 0);
    snprintf(want, sizeof want, "%s/sub/a.gguf", dir);
    if (c) CHECK(!strcmp(c->models[0].model_path, want) && !strcmp(c->path, path));
    hl_config_free(c);
    write_text(path, "models:\n  - id: a\n    config:\n      model_pth: a.gguf\n");
    CHECK(hl_config_load(&c, path, &e) < 0 && c == NULL);
    char head[700];
    snprintf(head, sizeof head, "%s:4: unknown key 'model_pth'", path);
    CHECK_STR_CONTAINS(e.msg, head);
    CHECK(hl_config_load(&c, hl_test_tmp("no-such.yaml"), &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "cannot open");
    CHECK_STR_CONTAINS(e.msg, "heylookllm import");
    CHECK(hl_config_load(&c, dir, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "not a regular file");
}

TEST(config_default_path) {
    char old[1024], buf[1100];
    const char *dir = hl_test_tmp("cfghome");
    char conf[600];
    if (!getcwd(old, sizeof old)) return;
    mkdir(dir, 0755);
    snprintf(conf, sizeof conf, "%s/.config", dir);
    mkdir(conf, 0755);
    snprintf(conf, sizeof conf, "%s/.config/heylook", dir);
    mkdir(conf, 0755);
    const char *home = getenv("HOME");
    char *saved = home ? strdup(home) : NULL;
    setenv("HOME", dir, 1);
    CHECK(chdir(dir) == 0);
    CHECK(hl_config_default_path(buf, sizeof buf) == NULL);
    snprintf(conf, sizeof conf, "%s/.config/heylook/models.yaml", dir);
    write_text(conf, "models: []\n");
    CHECK(hl_config_default_path(buf, sizeof buf) == buf && !strcmp(buf, conf));
    write_text("models.yaml", "models: []\n");
    CHECK(hl_config_default_path(buf, sizeof buf) && !strcmp(buf, "models.yaml"));
    CHECK(chdir(old) == 0);
    if (saved)
        setenv("HOME", saved, 1);
    else
        unsetenv("HOME");
    free(saved);
}

TEST(config_check_setting) {
    hl_err e = {{0}};
    hl_cfg_value_kind k = HL_CFG_VALUE_STRING;
    CHECK(hl_config_check_setting("temperature", "0.2", &k, &e) == 0 && k == HL_CFG_VALUE_PLAIN);
    CHECK(hl_config_check_setting("use_mlock", "yes", &k, &e) == 0 && k == HL_CFG_VALUE_PLAIN);
    CHECK(hl_config_check_setting("backend", "cuda", &k, &e) == 0 && k == HL_CFG_VALUE_STRING);
    CHECK(hl_config_check_setting("backend", "auto", &k, &e) == 0 && k == HL_CFG_VALUE_STRING);
    CHECK(hl_config_check_setting("device", "2", &k, &e) == 0 && k == HL_CFG_VALUE_PLAIN);
    CHECK(hl_config_check_setting("backend", "gpu", &k, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "one of auto, cpu, cuda");
    CHECK(hl_config_check_setting("chat_format", "no", &k, &e) == 0 && k == HL_CFG_VALUE_STRING);
    CHECK(hl_config_check_setting("draft_model_path", "d.gguf", &k, &e) == 0 &&
          k == HL_CFG_VALUE_PATH);
    CHECK(hl_config_check_setting("tempreture", "1", &k, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "unknown config key 'tempreture' (did you mean 'temperature'?)");
    CHECK(hl_config_check_setting("enabled", "true", &k, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "unknown config key 'enabled'");
    CHECK(hl_config_check_setting("n_ctx", "lots", &k, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "'n_ctx' in --override must be an integer, got the string \"lots\"");
    CHECK(hl_config_check_setting("parallel", "100", &k, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "from 1 to 64");
    CHECK(hl_config_check_setting("top_k", "", &k, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "needs a value");
}

/* ---- import ---- */

/* A GGUF file with the given metadata and n_tensors small F32 tensors of n floats each. */
static void write_gguf(const char *path, const char *arch, const char *type, int n_tensors,
                       uint64_t n) {
    hl_err e = {{0}};
    gguf_writer *w = gguf_writer_new();
    if (!w) return;
    gguf_set_str(w, "general.architecture", arch, &e);
    if (type) gguf_set_str(w, "general.type", type, &e);
    float *data = calloc(n, sizeof *data);
    for (int i = 0; i < n_tensors && data; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d.weight", i);
        gguf_add_tensor(w, name, HL_F32, 1, &n, data, &e);
    }
    free(data);
    if (gguf_writer_write(w, path, &e) < 0)
        hl_test_fail(__FILE__, __LINE__, "write %s: %s", path, e.msg);
    gguf_writer_free(w);
}

/* Runs `heylookllm import ARGS` with stdout and stderr sent to /dev/null. */
static int run_import(const char *const *args) {
    char *argv[16];
    int argc = 0;
    argv[argc++] = "import";
    for (int i = 0; args[i] && argc < 15; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    int o = dup(1), er = dup(2), nul = open("/dev/null", O_WRONLY);
    dup2(nul, 1);
    dup2(nul, 2);
    int rc = cmd_import(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(o, 1);
    dup2(er, 2);
    close(o);
    close(er);
    close(nul);
    return rc;
}

TEST(config_import_writes_a_loadable_file) {
    char root[600], sub[640], p[700], out[700];
    snprintf(root, sizeof root, "%s", hl_test_tmp("import"));
    snprintf(sub, sizeof sub, "%s/nested", root);
    mkdir(root, 0755);
    mkdir(sub, 0755);
    snprintf(p, sizeof p, "%s/Small-Model.Q4_0.gguf", root);
    write_gguf(p, "llama", "model", 1, 64);
    snprintf(p, sizeof p, "%s/big.GGUF", sub);
    write_gguf(p, "qwen2", NULL, 2, 4096);
    snprintf(p, sizeof p, "%s/small-model.q4_0.gguf", sub); /* same id as the first: made unique */
    write_gguf(p, "llama", NULL, 1, 128);
    snprintf(p, sizeof p, "%s/mmproj-model-f16.gguf", root);
    write_gguf(p, "clip", "mmproj", 1, 64);
    snprintf(p, sizeof p, "%s/old-projector.gguf", root);
    write_gguf(p, "clip", NULL, 1, 64);
    snprintf(p, sizeof p, "%s/vocab.gguf", root);
    write_gguf(p, "llama", NULL, 0, 0);
    snprintf(p, sizeof p, "%s/broken.gguf", root);
    write_text(p, "not a gguf file");
    snprintf(p, sizeof p, "%s/notes.txt", root);
    write_text(p, "ignored");
    snprintf(out, sizeof out, "%s", hl_test_tmp("imported.yaml"));

    CHECK_EQ_INT(run_import((const char *[]){"--folder", root, "--output", out, NULL}), 0);
    hl_config *c = NULL;
    hl_err e = {{0}};
    CHECK(hl_config_load(&c, out, &e) == 0);
    if (!c) {
        hl_test_fail(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    CHECK_EQ_INT(c->n_models, 3);
    if (c->n_models == 3) {
        /* a folder's files (Small-Model...) before its subfolders (nested/: big, small-model) */
        CHECK(!strcmp(c->models[0].id, "small-model.q4_0"));
        CHECK(!strcmp(c->models[1].id, "big"));
        CHECK(!strcmp(c->models[2].id, "small-model.q4_0-2"));
        snprintf(p, sizeof p, "%s/Small-Model.Q4_0.gguf", root);
        CHECK(!strcmp(c->models[0].model_path, p));
        CHECK(!strcmp(c->default_model, "small-model.q4_0"));
        for (int i = 0; i < 3; i++) {
            const hl_model_config *m = &c->models[i];
            CHECK(m->model_path[0] == '/' && m->enabled && m->n_ctx == 8192 && m->parallel == 4);
            CHECK(m->set & HL_CFG_TEMPERATURE && m->max_tokens == 1024 && m->top_k == 40);
        }
        CHECK(c->models[1].n_tags == 2 && !strcmp(c->models[1].tags[1], "qwen2"));
    }
    hl_config_free(c);

    /* no overwrite without --force */
    CHECK_EQ_INT(run_import((const char *[]){"--folder", root, "--output", out, NULL}), 1);
    /* profile and overrides */
    CHECK_EQ_INT(
        run_import((const char *[]){"--folder", root, "--output", out, "--force", "--profile",
                                    "memory", "--override", "backend=cuda", "--override", "top_k=5",
                                    "--override", "use_generation_lock=true", NULL}),
        0);
    CHECK(hl_config_load(&c, out, &e) == 0);
    if (c) {
        const hl_model_config *m = &c->models[0];
        CHECK(m->n_ctx == 4096 && m->parallel == 1 && m->max_tokens == 512);
        CHECK(!strcmp(m->backend, "cuda") && m->top_k == 5 && m->use_generation_lock);
    }
    hl_config_free(c);
    CHECK_EQ_INT(run_import((const char *[]){"--folder", root, "--output", out, "--force",
                                             "--profile", "fast", NULL}),
                 0);
    CHECK(hl_config_load(&c, out, &e) == 0);
    if (c) CHECK(c->models[0].max_tokens == 256 && c->models[0].temperature < 0.2f);
    hl_config_free(c);
    /* bad overrides and arguments write nothing */
    snprintf(p, sizeof p, "%s", hl_test_tmp("never.yaml"));
    CHECK_EQ_INT(run_import((const char *[]){"--folder", root, "--output", p, "--override",
                                             "n_cxt=1", NULL}),
                 1);
    CHECK_EQ_INT(
        run_import((const char *[]){"--folder", root, "--output", p, "--override", "n_ctx", NULL}),
        1);
    CHECK_EQ_INT(
        run_import((const char *[]){"--folder", root, "--output", p, "--profile", "turbo", NULL}),
        2);
    CHECK_EQ_INT(run_import((const char *[]){"--output", p, NULL}), 2);
    CHECK_EQ_INT(run_import((const char *[]){"--folder", sub, "--folder", hl_test_tmp("nowhere"),
                                             "--output", p, NULL}),
                 1);
    struct stat st;
    CHECK(stat(p, &st) < 0);
}
