/* bench_json.c - times the request parser on one body: the UTF-8 check alone,
 * json-c's strict tokenize alone (what hl_api_parse_request runs first), and
 * the whole hl_api_parse_request + hl_api_request_free, each best of N runs.
 *
 *   make bench && build/bench_json request.json [runs] [chat|completion]
 *
 * Prints one line per stage: "<stage>: <ms> ms, <MB/s> MB/s" (MB = 1e6
 * bytes), then the parse result (ok, or the error's status and code: an
 * image request is refused after the whole body is parsed, so its time is a
 * full parse too). bench/bench_json.py drives it and compares with orjson.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/api/api.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void report(const char *stage, double best, size_t len) {
    printf("%s: %.4f ms, %.1f MB/s\n", stage, best * 1e3, (double)len / best / 1e6);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s request.json [runs=20] [chat|completion]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 20;
    hl_api_kind kind = argc > 3 && !strcmp(argv[3], "completion") ? HL_API_COMPLETION : HL_API_CHAT;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)n + 1);
    if (!body || fread(body, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 1;
    }
    fclose(f);
    size_t len = (size_t)n;
    if (runs < 1) runs = 1;

    double best = 1e9;
    size_t valid = 0;
    for (int i = 0; i < runs; i++) {
        double t = now_s();
        valid = hl_utf8_valid_len(body, len);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    report("utf8 check", best, len);

    best = 1e9;
    for (int i = 0; i < runs; i++) {
        double t = now_s();
        json_tokener *tok = json_tokener_new_ex(64);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *o = json_tokener_parse_ex(tok, body, (int)len);
        json_tokener_free(tok);
        json_object_put(o);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    report("json-c tokenize", best, len);

    best = 1e9;
    hl_api_limits lim = {.max_n = HL_API_MAX_N, .max_tokens = 0};
    hl_api_error err = {0};
    int rc = 0;
    for (int i = 0; i < runs; i++) {
        hl_api_request r;
        double t = now_s();
        rc = hl_api_parse_request(kind, body, len, &lim, &r, &err);
        hl_api_request_free(&r);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    report("hl_api_parse_request", best, len);
    if (rc == 0)
        printf("result: ok (%zu bytes, valid UTF-8 prefix %zu)\n", len, valid);
    else
        printf("result: %d %s: %s\n", err.status, err.code, err.message);
    free(body);
    return 0;
}
