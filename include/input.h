/*
 * input: opens a data file for reading, whatever its packaging.
 *
 * "-" is standard input; a file that starts with the gzip magic bytes is
 * decompressed through `gzip -dc` in a child process (no zlib dependency,
 * and decompression runs on the other core while we parse).
 */
#ifndef SHOPKEEPER_INPUT_H
#define SHOPKEEPER_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "strbuf.h"

typedef struct input {
	FILE *fp;        /* read from this */
	pid_t child;     /* gzip's pid, or 0 */
	uint64_t size;   /* bytes on disk (compressed), 0 if unknown */
	int compressed;  /* 1 when fp carries gzip's output */
	int is_stdin;
} input;

/* Opens `path`. Returns 0, or -1 with a message in *err. */
int input_open(input *in, const char *path, strbuf *err);

/* Closes the stream and reaps gzip. Returns 0, or -1 with a message in *err
 * when gzip reported a corrupt or truncated file. */
int input_close(input *in, strbuf *err);

#endif
