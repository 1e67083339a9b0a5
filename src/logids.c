/*
 * logids: keyed hashes of customer ids in the access log. See logids.h.
 */
#include "logids.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "http.h"
#include "util.h"

/* ---- SipHash-2-4 (Aumasson and Bernstein, 2012) ---------------------------- */

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND                                                                   \
	do {                                                                       \
		v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);          \
		v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                             \
		v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                             \
		v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);          \
	} while (0)

uint64_t logids_siphash(const logids_key *key, const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t k0 = load_le64(key->k), k1 = load_le64(key->k + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	size_t whole = n - n % 8;
	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = load_le64(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)n << 56;
	for (size_t i = 0; i < n % 8; i++)
		b |= (uint64_t)p[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the key ------------------------------------------------------------------ */

static int key_create(const char *path, logids_key *key, strbuf *err)
{
	static const char hex[] = "0123456789abcdef";
	char text[2 * LOGIDS_KEY_BYTES + 1];
	if (getrandom(key->k, sizeof(key->k), 0) != (ssize_t)sizeof(key->k)) {
		sb_addf(err, "cannot make an access-log key: getrandom: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < LOGIDS_KEY_BYTES; i++) {
		text[2 * i] = hex[key->k[i] >> 4];
		text[2 * i + 1] = hex[key->k[i] & 15];
	}
	text[2 * LOGIDS_KEY_BYTES] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 1 : (sb_addf(err, "cannot create %s: %s", path,
						       strerror(errno)), -1);
	int rc = 0;
	if (write(fd, text, sizeof(text)) != (ssize_t)sizeof(text) || fsync(fd) != 0) {
		sb_addf(err, "cannot write %s: %s", path, strerror(errno));
		unlink(path);
		rc = -1;
	}
	close(fd);
	memset(text, 0, sizeof(text));
	return rc;
}

int logids_key_load(const char *path, int create, logids_key *key, strbuf *err)
{
	char text[2 * LOGIDS_KEY_BYTES + 2];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		int rc = key_create(path, key, err);
		if (rc <= 0)
			return rc;
		fd = open(path, O_RDONLY | O_CLOEXEC); /* made meanwhile by another */
	}
	if (fd < 0) {
		sb_addf(err, "cannot read the access-log key %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t got = read(fd, text, sizeof(text));
	close(fd);
	int bad = got < 2 * LOGIDS_KEY_BYTES ||
		  (got > 2 * LOGIDS_KEY_BYTES && text[2 * LOGIDS_KEY_BYTES] != '\n');
	for (int i = 0; !bad && i < LOGIDS_KEY_BYTES; i++) {
		int hi = util_hexval(text[2 * i]), lo = util_hexval(text[2 * i + 1]);
		if (hi < 0 || lo < 0)
			bad = 1;
		else
			key->k[i] = (uint8_t)(hi << 4 | lo);
	}
	memset(text, 0, sizeof(text));
	if (bad) {
		sb_addf(err, "%s: an access-log key is %d hex digits on one line (make one with: "
			     "od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')", path, 2 * LOGIDS_KEY_BYTES);
		return -1;
	}
	return 0;
}

/* ---- rewriting a line --------------------------------------------------------- */

/* The http layer logs at most 512 bytes of a path; an id is shorter. */
#define LOG_ID_RAW_MAX 520

static const char path_field[] = "\"path\":\"";
static const char customers[] = "/v1/customers/";

size_t logids_rewrite(const logids_key *key, const char *in, size_t n, char *out)
{
	const char *field = memmem(in, n, path_field, sizeof(path_field) - 1);
	size_t start = field ? (size_t)(field - in) + sizeof(path_field) - 1 : n;
	size_t pre = sizeof(customers) - 1;
	if (start + pre > n || memcmp(in + start, customers, pre) != 0) {
		memcpy(out, in, n);
		return n;
	}
	/* The id segment, JSON-escaped as the http layer wrote it (\" \\ and
	 * \u00XX only): up to the next '/' or the string's closing quote. */
	size_t seg = start + pre, end = seg;
	char raw[LOG_ID_RAW_MAX];
	size_t rn = 0;
	while (end < n && in[end] != '"' && in[end] != '/') {
		int c = (unsigned char)in[end];
		if (c == '\\' && end + 1 < n) {
			if (in[end + 1] == 'u' && end + 5 < n) {
				int hi = util_hexval(in[end + 4]), lo = util_hexval(in[end + 5]);
				c = hi < 0 || lo < 0 ? '?' : hi << 4 | lo;
				end += 6;
			} else {
				c = (unsigned char)in[end + 1];
				end += 2;
			}
		} else {
			end++;
		}
		if (rn < sizeof(raw) - 1)
			raw[rn++] = (char)c;
	}
	if (end == seg) { /* "/v1/customers/" names no one */
		memcpy(out, in, n);
		return n;
	}
	/* The id the server saw: percent-decoded (an invalid escape, answered
	 * 400, is hashed as sent). */
	char id[LOG_ID_RAW_MAX];
	long idn = http_percent_decode(raw, rn, id, false);
	uint64_t h = idn >= 0 ? logids_siphash(key, id, (size_t)idn) : logids_siphash(key, raw, rn);

	size_t o = 0;
	memcpy(out, in, seg);
	o += seg;
	out[o++] = '~';
	for (int i = 15; i >= 0; i--)
		out[o++] = "0123456789abcdef"[(h >> (4 * i)) & 15];
	memcpy(out + o, in + end, n - end);
	return o + (n - end);
}

/* ---- the filter thread ---------------------------------------------------------- */

/* Lines are under PIPE_BUF (4096): a few hundred fit the buffer, so a busy
 * server's lines go out in few writes. */
#define FILTER_BUF (64 * 1024)

/* A line the http layer never writes (it escapes control bytes): where in
 * the stream a reopen takes effect. */
static const char reopen_mark[] = "\x01\n";

struct logids_filter {
	int read_fd, write_fd, out_fd;
	atomic_int reopen_fd; /* the file to dup2 over out_fd at the mark, or -1 */
	logids_key key;
	pthread_t thread;
	char in[FILTER_BUF];
	char out[FILTER_BUF + FILTER_BUF / 4];
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* a full disk must not stop the log's readers: drop */
		p += w;
		n -= (size_t)w;
	}
}

static void *filter_main(void *arg)
{
	logids_filter *f = arg;
	size_t have = 0;
	for (;;) {
		ssize_t got = read(f->read_fd, f->in + have, sizeof(f->in) - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		have += (size_t)got;
		size_t done = 0, o = 0;
		for (;;) {
			char *nl = memchr(f->in + done, '\n', have - done);
			if (!nl)
				break;
			size_t len = (size_t)(nl - (f->in + done)) + 1;
			if (len == sizeof(reopen_mark) - 1 && f->in[done] == reopen_mark[0]) {
				write_all(f->out_fd, f->out, o); /* to the old file */
				o = 0;
				done += len;
				int fd = atomic_exchange(&f->reopen_fd, -1);
				if (fd >= 0 && dup2(fd, f->out_fd) < 0)
					fprintf(stderr, "shopkeeper: access log: cannot reopen: %s\n",
						strerror(errno));
				if (fd >= 0)
					close(fd);
				continue;
			}
			if (o + len + LOGIDS_HASH_LEN > sizeof(f->out)) {
				write_all(f->out_fd, f->out, o);
				o = 0;
			}
			o += logids_rewrite(&f->key, f->in + done, len, f->out + o);
			done += len;
		}
		if (done == 0 && have == sizeof(f->in)) {
			done = have; /* no line end in 64 KiB: not ours to parse */
			memcpy(f->out + o, f->in, have);
			o += have;
		}
		write_all(f->out_fd, f->out, o);
		memmove(f->in, f->in + done, have - done);
		have -= done;
	}
	write_all(f->out_fd, f->in, have); /* a last line without its end */
	return NULL;
}

int logids_filter_start(int out_fd, const logids_key *key, int *write_fd, logids_filter **out,
			strbuf *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		sb_addf(err, "access log: pipe: %s", strerror(errno));
		return -1;
	}
	/* Room for bursts while the filter writes; best effort (the default,
	 * 64 KiB, also works: writers then wait for the filter). */
	(void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	logids_filter *f = xcalloc(1, sizeof(*f));
	f->read_fd = p[0];
	f->write_fd = p[1];
	f->out_fd = out_fd;
	f->key = *key;
	atomic_init(&f->reopen_fd, -1);
	if (pthread_create(&f->thread, NULL, filter_main, f) != 0) {
		sb_addf(err, "access log: cannot start the filter thread");
		close(p[0]);
		close(p[1]);
		free(f);
		return -1;
	}
	*write_fd = p[1];
	*out = f;
	return 0;
}

void logids_filter_reopen(logids_filter *f, int new_fd)
{
	int old = atomic_exchange(&f->reopen_fd, new_fd);
	if (old >= 0)
		close(old); /* two reopens before the mark: the newer file wins */
	write_all(f->write_fd, reopen_mark, sizeof(reopen_mark) - 1);
}

void logids_filter_stop(logids_filter *f)
{
	if (!f)
		return;
	close(f->write_fd);
	pthread_join(f->thread, NULL);
	int fd = atomic_load(&f->reopen_fd);
	if (fd >= 0)
		close(fd);
	close(f->read_fd);
	memset(&f->key, 0, sizeof(f->key));
	free(f);
}
