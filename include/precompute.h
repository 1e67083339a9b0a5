/*
 * precompute: each model customer's best candidates, scored when the model
 * is trained (train --precompute N) so that the request path can answer a
 * customer with no live events by filtering a list instead of scoring.
 *
 * The lists are scored by the server's own code (rec_for_history, on the
 * model file just written, with the parameters the model serves with by
 * default), so whatever scoring does they hold. What the request path does
 * with them, and what makes it score in full instead, is in recommend.h
 * (rec_for_history) and docs/design.md, "Precomputed lists".
 */
#ifndef SHOPKEEPER_PRECOMPUTE_H
#define SHOPKEEPER_PRECOMPUTE_H

#include <stdint.h>

#include "idmap.h"
#include "model_writer.h"
#include "strbuf.h"

/* Entries per customer by default: 20 x 20 bytes, about 400 bytes a
 * customer. A default answer (n=10) is served from the list as long as
 * the filters leave 10 of its 20: out-of-stock items, exclude= and the
 * like take a few, a category filter usually more (then scoring runs). */
#define PRECOMPUTE_DEFAULT 20u
#define PRECOMPUTE_MAX 100u /* REC_MAX_N: an answer's most items */

/* Scores customers[0..n_customers) (customer c written with
 * customer_summary.precomputed c + 1) on the model w has written so far,
 * n candidates each, on `threads` threads (0: every core), and writes the
 * "precomputed" record. Pauses and resumes w. Returns 0, or STORE_ERROR /
 * STORE_CORRUPT with a message in *err (w then only to be aborted). */
int precompute_write(model_writer *w, uint32_t n, uint32_t threads, const idmap *customers,
		     uint32_t n_customers, strbuf *err);

#endif
