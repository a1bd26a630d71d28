/* cli_args.c - option parsing the subcommands share; see cli.h. */
#include <stdio.h>

#include "cli.h"

int hl_cli_backend(const char *cmd, const char *what, const char *value, hl_backend *out) {
    int b = hl_backend_from_name(value);
    if (b < 0) {
        fprintf(stderr, "heylookllm %s: %s is auto, cpu or cuda, not '%s'\n", cmd, what, value ? value : "");
        return 2;
    }
    *out = (hl_backend)b;
    return 0;
}
