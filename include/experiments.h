/*
 * experiments: A/B experiments from `serve --experiments FILE`: the file
 * parsed and validated, and which variant a customer is in.
 *
 * The file (docs/operations.md, "Experiments"):
 *
 *   {"experiments": [{"name": "home-recs", "salt": "2026-12",
 *     "routes": ["customer"],
 *     "variants": [{"name": "control", "share": 0.5, "source": "popular"},
 *                  {"name": "personal", "share": 0.5,
 *                   "params": {"neighbors_used": 50}}]}]}
 *
 * Rules, each refused with a message naming the experiment, variant and key:
 * only the keys shown here and under "params"; names of 1..EXP_NAME_MAX
 * bytes of [A-Za-z0-9._-], unique among experiments and within one
 * experiment's variants; a salt string (may be ""); routes among customer,
 * item and basket, at least one, and no route in two experiments (two
 * experiments on one route would confound each other: end one before the
 * next starts); 1..EXP_MAX_VARIANTS variants whose shares are each > 0 and
 * sum to 1 within 1e-9; source "popular" or "none" (absent: what the route
 * answers without an experiment); params with the names and bounds of the
 * query parameters and serve flags they stand for (EXP_PARAM_*).
 *
 * Assignment: a customer id is in variant v of an experiment when the hash
 * of (salt, id), as a number in [0, 1), falls in v's share of the
 * cumulative shares in file order. It depends on nothing but the salt, the
 * id and the shares, so it is the same after a restart and on every
 * replica; experiments with different salts assign independently. Changing
 * the salt reshuffles everyone, by design (a new experiment).
 *
 * An experiments set is immutable once loaded: workers read it without a
 * lock; a reload builds a new one beside it.
 */
#ifndef SHOPKEEPER_EXPERIMENTS_H
#define SHOPKEEPER_EXPERIMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recid.h"
#include "recommend.h"
#include "strbuf.h"

#define EXP_MAX_EXPERIMENTS 64
#define EXP_MAX_VARIANTS 16
#define EXP_NAME_MAX 64   /* bytes of an experiment or variant name */
#define EXP_SALT_MAX 256  /* bytes of a salt */
#define EXP_FILE_MAX (1 << 20) /* bytes of the file */
#define EXP_SHARE_TOLERANCE 1e-9
/* Distinct variant "model" directories in one file. Each is mapped beside
 * the main model and a reload maps the new ones before the old are let go,
 * so each costs its file's address space twice during a reload; four is
 * plenty for an A/B test (one model against another) with room for an
 * A/B/n, and bounds what a typo in a file can make the server map. */
#define EXP_MAX_MODELS 4

/* What a variant answers with. */
enum exp_source {
	EXP_SOURCE_DEFAULT = 0, /* what the route answers outside experiments */
	EXP_SOURCE_POPULAR,     /* the popular list, same business filters */
	EXP_SOURCE_NONE,        /* a holdout: "source":"none", "items":[] */
};

/* A variant's serve-time parameters: each field is "not given" unless the
 * file set it. They change the server's defaults for the variant's
 * customers; a query parameter the request gives explicitly still wins
 * (docs/api.md, "Experiments"). */
typedef struct exp_params {
	uint32_t n;             /* 1..REC_MAX_N; 0: not given */
	int include_purchased;  /* 0, 1; -1: not given */
	int explain;            /* 0, 1; -1: not given */
	float min_price, max_price; /* >= 0; < 0: not given */
	rec_params rec;         /* neighbors_used, cutoff, negatives_used;
				 * rec_params_unset's values: not given */
	bool any_rec;           /* a field of rec is given */
} exp_params;

typedef struct exp_variant {
	char name[EXP_NAME_MAX + 1];
	double share;
	double upper;           /* cumulative share up to and including this one */
	enum exp_source source;
	char *model_dir;        /* owned; NULL: the main model */
	uint8_t model_slot;     /* 0: the main model; k: the set's model k - 1
				 * (experiments_model_dir), shared by every
				 * variant naming the same directory string */
	bool has_params;
	exp_params params;
} exp_variant;

/* Routes as a bit set: 1u << RECID_ROUTE_*. */
#define EXP_ROUTE_BIT(r) (1u << (r))

typedef struct exp_experiment {
	char name[EXP_NAME_MAX + 1];
	char salt[EXP_SALT_MAX + 1];
	size_t salt_len;
	uint32_t id;            /* recid_experiment_id(name, salt) */
	unsigned routes;        /* EXP_ROUTE_BIT of each route */
	uint8_t n_variants;
	exp_variant variants[EXP_MAX_VARIANTS];
} exp_experiment;

typedef struct experiments experiments;

/* Parses and validates json[0..len) (borrowed). Returns 0 and a new set in
 * *out (the caller owns it: experiments_free), or -1 with one line in
 * *err naming the problem ("experiment \"home-recs\", variant \"control\":
 * share must be > 0"). An empty list is a valid set with no experiment. */
int experiments_parse(const char *json, size_t len, experiments **out, strbuf *err);
/* experiments_parse on the file at path (at most EXP_FILE_MAX bytes); a
 * missing or unreadable file is an error too, with the path in *err. */
int experiments_load(const char *path, experiments **out, strbuf *err);
/* experiments_free(NULL) does nothing. */
void experiments_free(experiments *ex);

/* The experiments in file order; valid until experiments_free. */
size_t experiments_count(const experiments *ex);
const exp_experiment *experiments_at(const experiments *ex, size_t i);
/* The experiment named name[0..len), or NULL. */
const exp_experiment *experiments_find(const experiments *ex, const char *name, size_t len);

/* The distinct variant model directories, in order of first mention
 * (model_slot - 1 indexes them); at most EXP_MAX_MODELS, else the file is
 * refused. Two spellings of one directory ("m" and "./m") are two slots
 * here; the api maps such slots once (it compares the resolved paths). */
size_t experiments_model_count(const experiments *ex);
/* Borrowed; valid until experiments_free. */
const char *experiments_model_dir(const experiments *ex, size_t i);

/* The hash of (salt, id) as a number in [0, 1): 53 bits of a 64-bit
 * hash, so every share boundary is exact to 1e-15. */
double experiments_unit(const char *salt, size_t salt_len, const char *id, size_t id_len);

/* A customer's place: experiment and variant (borrowed from the set). */
typedef struct exp_assignment {
	const exp_experiment *experiment; /* NULL: outside every experiment */
	const exp_variant *variant;
	uint8_t variant_index;
} exp_assignment;

/* The experiment on `route` (RECID_ROUTE_*) and the variant id[0..len) is
 * in. ex NULL, id NULL or no experiment on the route: out->experiment
 * NULL. At most one experiment per route (see the rules above), so this is
 * a scan of at most EXP_MAX_EXPERIMENTS route bits and one hash. Never
 * allocates; safe from any thread. */
void experiments_assign(const experiments *ex, enum recid_route route, const char *id,
			size_t len, exp_assignment *out);

/* Appends the set as GET /v1/experiments answers it:
 * {"experiments":[{"name","id","salt","routes":[...],"variants":[{"name",
 * "share","source","model"?,"params"?}]}]} ("source": "popular", "none"
 * or "default"; "model": the directory's last path part, not where the
 * server keeps it). ex NULL: {"experiments":[]}. */
void experiments_json(const experiments *ex, strbuf *sb);
/* experiments_json, and "model_id" beside "model" for variants with their
 * own model: model_ids[model_slot - 1] (borrowed; NULL or an entry NULL:
 * left out). */
void experiments_json_models(const experiments *ex, const char *const *model_ids, strbuf *sb);

/* "customer", "item", "basket" for a RECID_ROUTE_*, else "none". */
const char *experiments_route_name(enum recid_route route);
/* "default", "popular", "none". */
const char *experiments_source_name(enum exp_source s);

#endif
