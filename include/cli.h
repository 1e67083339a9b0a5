/*
 * cli: the `shopkeeper` command line. main() hands argv to cli_main(); each
 * command lives in its own cli_<command>.c.
 *
 * Exit codes (DESIGN.md): 0 success, 1 runtime failure, 2 usage error.
 */
#ifndef SHOPKEEPER_CLI_H
#define SHOPKEEPER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define SHOPKEEPER_VERSION "0.1.0"

int cli_main(int argc, char **argv);

int cmd_train(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* Prints "shopkeeper CMD: MESSAGE" and a pointer to --help; returns
 * EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "shopkeeper CMD: MESSAGE"; returns EXIT_RUNTIME. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole decimal unsigned integer within [min, max]. */
bool cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* Parses a whole finite decimal number. */
bool cli_parse_double(const char *s, double *out);

#endif
