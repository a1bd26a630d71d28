/* cli.h - the subcommands of heylookllm. Each takes the arguments after its
 * name (argv[0] is the subcommand name) and returns the process exit status.
 * Errors go to stderr as one line starting with "heylookllm <cmd>: ".
 * Only main.c calls these; they run on the main thread.
 */
#ifndef HL_CLI_H
#define HL_CLI_H

#include "../engine/model.h"

int cmd_serve(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_template(int argc, char **argv);

/* A backend named by option or variable `what` (e.g. "--backend") of
 * subcommand cmd: 0 with *out set, or 2 (the exit status) after printing
 * "heylookllm <cmd>: <what> is auto, cpu or cuda, not '<value>'". */
int hl_cli_backend(const char *cmd, const char *what, const char *value, hl_backend *out);

#endif
