/*
 * recid: the rec_id every recommendation answer carries, and its codec.
 *
 * A rec_id names one answer: which experiment and variant it was served
 * under, by which model, on which route, when. The storefront passes it
 * back on click, cart, purchase and impression events, so attribution needs
 * no lookup table of what was served: everything is in the id.
 *
 * Text form: RECID_LEN (28) characters of base64url without padding
 * ([A-Za-z0-9_-], safe in a URL and a JSON string unescaped) over 21 bytes:
 *
 *   byte 0      version (high 4 bits, RECID_VERSION) | route (low 4 bits)
 *   bytes 1-4   experiment id, big-endian (0 = outside every experiment)
 *   byte 5      variant index (0 when outside every experiment)
 *   bytes 6-9   model id, big-endian
 *   bytes 10-15 time in ms since the Unix epoch, 48 bits big-endian
 *   bytes 16-19 sequence, big-endian (per process, see recid_next_seq)
 *   byte 20     check: the low 8 bits of CRC-32C over bytes 0-19
 *
 * 21 bytes are exactly 28 base64 characters, so no bits are left over and
 * one id has one spelling. The id is opaque to clients, not secret: anyone
 * can decode it. The check byte turns most typos and truncations into an
 * error instead of a wrong attribution; it is not a signature.
 *
 * Ids: an experiment's id is recid_experiment_id(name, salt), a model's is
 * recid_model_id(model_id); both are 32-bit hashes, stable across
 * processes, machines and versions of this program (the report groups by
 * them). 0 is never returned, so 0 can mean "none".
 *
 * Nothing here allocates or locks: recid_encode runs once per answer.
 */
#ifndef SHOPKEEPER_RECID_H
#define SHOPKEEPER_RECID_H

#include <stddef.h>
#include <stdint.h>

#define RECID_LEN 28     /* characters of the text form, without a NUL */
#define RECID_VERSION 1  /* the layout above */

/* Routes, as they appear in byte 0. */
enum recid_route {
	RECID_ROUTE_NONE = 0,     /* not a recommendation route (never encoded) */
	RECID_ROUTE_CUSTOMER = 1, /* GET /v1/customers/{id}/recommendations */
	RECID_ROUTE_ITEM = 2,     /* GET /v1/items/{id}/similar */
	RECID_ROUTE_BASKET = 3,   /* POST /v1/recommendations */
};
#define RECID_ROUTE_MAX RECID_ROUTE_BASKET

typedef struct recid {
	uint32_t experiment; /* recid_experiment_id(); 0 = no experiment */
	uint8_t variant;     /* index into the experiment's variants; 0 when none */
	uint32_t model;      /* recid_model_id() of the model that answered */
	uint8_t route;       /* enum recid_route, 1..RECID_ROUTE_MAX */
	int64_t time_ms;     /* ms since the Unix epoch, 0..2^48-1 */
	uint32_t seq;        /* recid_next_seq(): tells two answers apart */
} recid;

/* Error codes of recid_decode (and recid_encode's precondition failure). */
enum recid_err {
	RECID_OK = 0,
	RECID_ELENGTH = -1,  /* not exactly RECID_LEN characters */
	RECID_ECHAR = -2,    /* a character outside base64url */
	RECID_ECHECK = -3,   /* the check byte does not match: mistyped or cut */
	RECID_EVERSION = -4, /* a version this program does not read */
	RECID_EFIELD = -5,   /* a field out of range (route, variant without experiment) */
};

/* A short English description of a recid_err ("rec_id has the wrong
 * length", ...), static. */
const char *recid_strerror(int err);

/* Writes id's text form and a NUL into out. Returns RECID_OK, or
 * RECID_EFIELD (out then holds "") when id is not encodable: route outside
 * 1..RECID_ROUTE_MAX, time_ms outside 0..2^48-1, or a variant without an
 * experiment. Never allocates. */
int recid_encode(const recid *id, char out[RECID_LEN + 1]);

/* Reads s[0..len) (borrowed; not NUL-terminated necessarily; any bytes:
 * events are hostile input) into *out. Returns RECID_OK, or a negative
 * enum recid_err; *out is untouched on an error. Reads at most RECID_LEN
 * bytes of s. */
int recid_decode(const char *s, size_t len, recid *out);

/* A sequence number for a new id: distinct for 2^32 calls in a process,
 * and starting at a random point per process so two replicas answering in
 * the same millisecond do not collide but by a 2^-32 chance. Lock-free
 * (one atomic add); safe from any thread. */
uint32_t recid_next_seq(void);

/* The 32-bit id of an experiment (name and salt, NUL-terminated, borrowed)
 * and of a model (its meta record's model_id). Never 0. */
uint32_t recid_experiment_id(const char *name, const char *salt);
uint32_t recid_model_id(const char *model_id);

/* The 64-bit hash both ids (and experiment assignment) are made of:
 * FNV-1a over data[0..len) from `h` (RECID_HASH_INIT to start, or the
 * previous result to go on with the next part), not finalised. Finalise
 * with recid_hash_final before using the bits: FNV alone mixes its last
 * bytes poorly. Stable across versions: ids and assignments depend on it. */
#define RECID_HASH_INIT 0xcbf29ce484222325ull /* FNV-1a's offset basis */
uint64_t recid_hash(uint64_t h, const void *data, size_t len);
uint64_t recid_hash_final(uint64_t h);

#endif
