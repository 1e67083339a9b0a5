/*
 * recid: the rec_id codec. See recid.h for the layout.
 */
#include "recid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "crc32c.h"

#define RAW_LEN 21 /* bytes behind the RECID_LEN characters */
#define TIME_MAX ((int64_t)1 << 48)

static const char alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *recid_strerror(int err)
{
	switch (err) {
	case RECID_OK:
		return "ok";
	case RECID_ELENGTH:
		return "rec_id has the wrong length";
	case RECID_ECHAR:
		return "rec_id has a character outside base64url";
	case RECID_ECHECK:
		return "rec_id's check does not match (mistyped or cut short)";
	case RECID_EVERSION:
		return "rec_id has an unknown version";
	case RECID_EFIELD:
		return "rec_id has a field out of range";
	}
	return "rec_id error";
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static int fields_valid(const recid *id)
{
	if (id->route < 1 || id->route > RECID_ROUTE_MAX)
		return 0;
	if (id->time_ms < 0 || id->time_ms >= TIME_MAX)
		return 0;
	if (!id->experiment && id->variant)
		return 0;
	return 1;
}

int recid_encode(const recid *id, char out[RECID_LEN + 1])
{
	uint8_t raw[RAW_LEN];
	if (!fields_valid(id)) {
		out[0] = '\0';
		return RECID_EFIELD;
	}
	raw[0] = (uint8_t)(RECID_VERSION << 4 | id->route);
	put_be(raw + 1, id->experiment, 4);
	raw[5] = id->variant;
	put_be(raw + 6, id->model, 4);
	put_be(raw + 10, (uint64_t)id->time_ms, 6);
	put_be(raw + 16, id->seq, 4);
	raw[20] = (uint8_t)crc32c(0, raw, 20);
	/* 3 bytes -> 4 characters, 7 times */
	for (int i = 0, o = 0; i < RAW_LEN; i += 3, o += 4) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		out[o] = alphabet[v >> 18];
		out[o + 1] = alphabet[v >> 12 & 63];
		out[o + 2] = alphabet[v >> 6 & 63];
		out[o + 3] = alphabet[v & 63];
	}
	out[RECID_LEN] = '\0';
	return RECID_OK;
}

static int char_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int recid_decode(const char *s, size_t len, recid *out)
{
	uint8_t raw[RAW_LEN];
	if (len != RECID_LEN)
		return RECID_ELENGTH;
	for (int i = 0, o = 0; i < RECID_LEN; i += 4, o += 3) {
		uint32_t v = 0;
		for (int k = 0; k < 4; k++) {
			int d = char_value((unsigned char)s[i + k]);
			if (d < 0)
				return RECID_ECHAR;
			v = v << 6 | (uint32_t)d;
		}
		raw[o] = (uint8_t)(v >> 16);
		raw[o + 1] = (uint8_t)(v >> 8);
		raw[o + 2] = (uint8_t)v;
	}
	if (raw[20] != (uint8_t)crc32c(0, raw, 20))
		return RECID_ECHECK;
	if (raw[0] >> 4 != RECID_VERSION)
		return RECID_EVERSION;
	recid id = {
		.route = raw[0] & 15,
		.experiment = (uint32_t)get_be(raw + 1, 4),
		.variant = raw[5],
		.model = (uint32_t)get_be(raw + 6, 4),
		.time_ms = (int64_t)get_be(raw + 10, 6),
		.seq = (uint32_t)get_be(raw + 16, 4),
	};
	if (!fields_valid(&id))
		return RECID_EFIELD;
	*out = id;
	return RECID_OK;
}

/* ---- sequence ----------------------------------------------------------- */

static _Atomic uint32_t seq_next;
static pthread_once_t seq_once = PTHREAD_ONCE_INIT;

/* A random starting point, so replicas do not count from the same place;
 * the clock stands in when getrandom has nothing (early boot, seccomp). */
static void seq_seed(void)
{
	uint32_t start;
	if (getrandom(&start, sizeof start, GRND_NONBLOCK) != (ssize_t)sizeof start) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		start = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u;
	}
	atomic_store_explicit(&seq_next, start, memory_order_relaxed);
}

uint32_t recid_next_seq(void)
{
	pthread_once(&seq_once, seq_seed);
	return atomic_fetch_add_explicit(&seq_next, 1, memory_order_relaxed);
}

/* ---- ids ------------------------------------------------------------------ */

uint64_t recid_hash(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull; /* FNV-1a's 64-bit prime */
	}
	return h;
}

/* splitmix64's finaliser: every input bit reaches every output bit. */
uint64_t recid_hash_final(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

static uint32_t nonzero32(uint64_t h)
{
	uint32_t v = (uint32_t)(h >> 32);
	return v ? v : 1;
}

uint32_t recid_experiment_id(const char *name, const char *salt)
{
	/* the NUL between keeps ("ab","c") and ("a","bc") apart */
	uint64_t h = recid_hash(RECID_HASH_INIT, "experiment", sizeof "experiment");
	h = recid_hash(h, name, strlen(name) + 1);
	h = recid_hash(h, salt, strlen(salt));
	return nonzero32(recid_hash_final(h));
}

uint32_t recid_model_id(const char *model_id)
{
	uint64_t h = recid_hash(RECID_HASH_INIT, "model", sizeof "model");
	h = recid_hash(h, model_id, strlen(model_id));
	return nonzero32(recid_hash_final(h));
}
