/*
 * cli: the `shopkeeper` command line. main() hands argv to cli_main(); each
 * command lives in its own cli_<command>.c.
 *
 * Exit codes (docs/design.md "Command line"): 0 success, 1 runtime failure, 2 usage error.
 */
#ifndef SHOPKEEPER_CLI_H
#define SHOPKEEPER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define SHOPKEEPER_VERSION "0.1.0"

#include <getopt.h>

#include "ingest.h"
#include "recommend.h"
#include "strbuf.h"
#include "train.h"

int cli_main(int argc, char **argv);

int cmd_train(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_catalog(int argc, char **argv);   /* cli_catalog.c */
int cmd_customers(int argc, char **argv); /* cli_catalog.c */
int cmd_eventlog(int argc, char **argv);  /* cli_eventlog.c: trim, tail */

/* ---- training flags, shared by train and eval (cli_train.c) ------------- */

struct train_flags {
	const char *catalog;   /* --catalog */
	const char *customers; /* --customers */
	const char *exclude;   /* --exclude-customers */
	const char *exclude_items; /* --exclude-items */
	const char *events_from; /* train --events-from: STATE_DIR or a log URL */
	const char *columns;  /* --columns */
	const char *catalog_columns;   /* --catalog-columns */
	const char *customers_columns; /* --customers-columns */
	bool strict;          /* --strict */
	bool has_as_of;       /* --as-of given */
	int64_t as_of;
	train_options topt;
	/* tuning (tune.h) */
	bool no_tune;            /* --no-tune: fit once with topt */
	double tune_budget;      /* --tune-budget SECONDS (0: the default) */
	const char *params_from; /* --params-from MODEL_DIR */
	unsigned pinned;         /* TUNE_PIN_* of the flags given */
	rec_params serve;        /* eval's --neighbors-used/--cutoff when pinned */
	struct tune_result *tuning; /* what train_fit chose (owned), or NULL */
};

/* getopt_long codes of the shared flags start here. */
#define TRAIN_FLAG_BASE 1000
#define TRAIN_FLAG_COUNT 22

/* Starts parsing a command that takes the shared flags (train, eval): sets
 * *f to the defaults, appends the shared options to `opts` after its
 * `own` entries and ends the table (room for own + TRAIN_FLAG_COUNT + 1),
 * and resets getopt for a fresh parse (errors reported by the caller). */
void train_flags_begin(struct train_flags *f, struct option *opts, size_t own);
/* Frees what train_fit left in f (the tuning record). */
void train_flags_release(struct train_flags *f);
/* Applies a shared option (`given`: the option as typed, for the message
 * when `code` is none). Returns 0 if it was one and valid, or EXIT_USAGE
 * after printing the problem (a bad value, or an unknown or incomplete
 * option). */
int train_flags_apply(struct train_flags *f, int code, const char *arg, const char *cmd,
		      const char *given);
/* The usage lines of the shared flags. */
extern const char train_flags_usage[];

/* Reads `path` and trains: ds and r are filled (caller frees them with
 * dataset_free/train_result_free, also on failure). *as_of is --as-of or
 * the newest timestamp. Unless --no-tune, the parameters are first tuned
 * on a validation split of the same data (or read with --params-from):
 * f->topt becomes the choice and f->tuning the record. Returns 0, or -1
 * with a message in *err. */
int train_fit(const char *path, struct train_flags *f, dataset *ds, train_result *r,
	      int64_t *as_of, double *secs_ingest, strbuf *err);
/* Writes the model directory. Returns 0, or -1 with a message in *err. */
int train_write(const char *out, const struct train_flags *f, const dataset *ds,
		const train_result *r, int64_t as_of, strbuf *err);

/* Prints "shopkeeper CMD: MESSAGE" and a pointer to --help; returns
 * EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "shopkeeper CMD: MESSAGE"; returns EXIT_RUNTIME. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole decimal unsigned integer within [min, max]. */
bool cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* Parses a whole finite decimal number. */
bool cli_parse_double(const char *s, double *out);
/* A scoring cutoff share: a number in [0, 1). */
bool cli_parse_cutoff(const char *s, float *out);

#endif
