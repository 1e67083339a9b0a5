/*
 * eventlog_internal: what eventlog.c, eventlog_codec.c and eventlog_url.c
 * share, and nothing else includes.
 */
#ifndef SHOPKEEPER_EVENTLOG_INTERNAL_H
#define SHOPKEEPER_EVENTLOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eventlog.h"

/* Parses s[0..n) as a decimal u64: 0, or -1 (not digits, overflow). */
int eventlog_parse_u64(const char *s, size_t n, uint64_t *out);
/* The id just before `id` in the stream's order; false when there is none. */
bool eventlog_id_prev(eventlog_id id, eventlog_id *out);
/* Whether s[0..n) is a string the log carries: min..max bytes, checked
 * as eventlog_codec.c says. */
bool eventlog_valid_string(const char *s, size_t n, size_t min, size_t max);

#endif
