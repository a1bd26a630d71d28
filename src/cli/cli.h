/* cli.h - the subcommands of heylookllm. Each takes the arguments after its
 * name (argv[0] is the subcommand name) and returns the process exit status.
 * Errors go to stderr as one line starting with "heylookllm <cmd>: ".
 * Only main.c calls these; they run on the main thread.
 */
#ifndef HL_CLI_H
#define HL_CLI_H

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

#endif
