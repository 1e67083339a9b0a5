/*
 * store: what the store modules share: error names, directories, LMDB
 * error mapping, the offset-table codec and paged-walk cursors. See
 * store.h for how the store is split, store_internal.h for these helpers.
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"
#include "util.h"

const char *store_strerror(int code)
{
	switch (code) {
	case STORE_OK: return "ok";
	case STORE_NOTFOUND: return "not found";
	case STORE_CORRUPT: return "corrupt record";
	case STORE_ERROR: return "storage error";
	}
	return "unknown error";
}

int store_make_dirs(const char *dir, strbuf *err)
{
	char *path = xstrdup(dir);
	for (char *p = path + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST) {
				sb_addf(err, "cannot create directory %s: %s", path, strerror(errno));
				free(path);
				return -1;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(path);
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		sb_addf(err, "%s is not a directory", dir);
		return -1;
	}
	return 0;
}

int store_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* LMDB's default reader slots, and the bytes one takes in the lock file
 * (a cache line); the lock file's head is a few more lines. */
#define LMDB_DEFAULT_READERS 126u
#define LMDB_READER_BYTES 64u

/* Allocates the blocks of the lock file LMDB will map for `path`. LMDB
 * ftruncates it and writes it through the map: on a full disk the blocks
 * of a sparse file cannot be allocated, and the first write into the map
 * is a SIGBUS, with no message. Allocated here first, a full disk is
 * ENOSPC, said in words. Returns 0, or -1 with a message in *err; a lock
 * file it cannot open (a read-only directory, where LMDB reads without
 * one) is left to LMDB. */
static int lock_file_allocate(const char *path, unsigned maxreaders, const char *what,
			      strbuf *err)
{
	strbuf lock = STRBUF_INIT;
	sb_addf(&lock, "%s-lock", path); /* MDB_NOSUBDIR's name */
	int ret = 0, fd = open(lock.buf, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		off_t bytes = (off_t)((maxreaders ? maxreaders : LMDB_DEFAULT_READERS) + 8) *
			      LMDB_READER_BYTES;
		int rc = posix_fallocate(fd, 0, bytes);
		if (rc == ENOSPC || rc == EDQUOT) {
			sb_addf(err, "cannot open %s %s: no room for its lock file %s (%lld bytes): %s",
				what, path, lock.buf, (long long)bytes, strerror(rc));
			ret = -1;
		}
		close(fd);
	}
	sb_release(&lock);
	return ret;
}

int store_env_open(const char *path, unsigned flags, unsigned maxdbs, uint64_t mapsize,
		   unsigned maxreaders, const char *what, MDB_env **env, strbuf *err)
{
	*env = NULL;
	if (!(flags & MDB_NOLOCK) && lock_file_allocate(path, maxreaders, what, err) != 0)
		return ENOSPC;
	int rc = mdb_env_create(env);
	if (rc == 0 && mapsize)
		rc = mdb_env_set_mapsize(*env, (size_t)mapsize);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(*env, maxdbs);
	if (rc == 0 && maxreaders)
		rc = mdb_env_set_maxreaders(*env, maxreaders);
	if (rc == 0)
		rc = mdb_env_open(*env, path, flags | MDB_NOSUBDIR, 0644);
	if (rc) {
		sb_addf(err, "cannot open %s %s: %s", what, path, mdb_strerror(rc));
		mdb_env_close(*env); /* also after a failed open, as LMDB asks */
		*env = NULL;
	}
	return rc;
}

int store_txn_commit(MDB_txn **txn)
{
	int rc = mdb_txn_commit(*txn);
	*txn = NULL;
	return rc;
}

int store_lmdb_fail(strbuf *err, const char *what, int rc)
{
	sb_addf(err, "%s: %s", what, mdb_strerror(rc));
	return STORE_ERROR;
}

int store_code(int rc)
{
	switch (rc) {
	case 0: return STORE_OK;
	case MDB_NOTFOUND: return STORE_NOTFOUND;
	case MDB_CORRUPTED: return STORE_CORRUPT;
	}
	return STORE_ERROR;
}

/* ---- offset tables ---------------------------------------------------------- */

void offtab_put_begin(offtab_writer *w, void *blob, uint32_t n, size_t unit)
{
	*w = (offtab_writer){ blob, unit, n, 0, 0 };
	memcpy(w->blob, &n, 4);
}

void offtab_put(offtab_writer *w, const void *data, uint32_t units)
{
	assert(w->i < w->n);
	memcpy(w->blob + 4 + 4 * (size_t)w->i, &w->end, 4);
	if (units)
		memcpy(w->blob + offtab_head(w->n) + (size_t)w->end * w->unit, data,
		       (size_t)units * w->unit);
	w->end += units;
	w->i++;
}

void offtab_put_end(offtab_writer *w)
{
	assert(w->i == w->n);
	memcpy(w->blob + 4 + 4 * (size_t)w->n, &w->end, 4);
}

int offtab_check(const void *blob, size_t size, size_t unit, uint32_t want, uint32_t max_units,
		 offtab *t)
{
	const unsigned char *b = blob;
	uint32_t n, prev = 0;
	if (size < 8)
		return STORE_CORRUPT;
	memcpy(&n, b, 4);
	size_t head = offtab_head(n);
	if ((want != OFFTAB_ANY_COUNT && n != want) || size < head)
		return STORE_CORRUPT;
	for (uint32_t i = 0; i <= n; i++) {
		uint32_t off;
		memcpy(&off, b + 4 + 4 * (size_t)i, 4);
		if (off < prev || (i > 0 && max_units && off - prev > max_units))
			return STORE_CORRUPT;
		prev = off;
	}
	/* prev is off[n] now, the largest offset. */
	if (size - head != (size_t)prev * unit)
		return STORE_CORRUPT;
	*t = (offtab){ b + 4, b + head, unit, n, prev };
	return 0;
}

/* ---- read transactions -------------------------------------------------------- */

int store_reader_begin(MDB_env *env, store_reader *r)
{
	int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &r->txn);
	r->active = rc == 0;
	return rc;
}

bool store_reader_reset(store_reader *r)
{
	if (!r->active)
		return false;
	mdb_txn_reset(r->txn);
	r->active = false;
	return true;
}

int store_reader_renew(store_reader *r)
{
	if (r->active)
		return 0;
	int rc = mdb_txn_renew(r->txn);
	r->active = rc == 0;
	return rc;
}

/* ---- paged walks ------------------------------------------------------------ */

int store_cursor_after(MDB_cursor *c, const void *after, size_t len, MDB_cursor_op past,
		       MDB_val *k, MDB_val *v)
{
	if (!after || len == 0)
		return mdb_cursor_get(c, k, v, MDB_FIRST);
	k->mv_size = len;
	k->mv_data = (void *)after;
	int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
	/* Skip the key itself: paging resumes after it. */
	if (rc == 0 && k->mv_size == len && memcmp(k->mv_data, after, len) == 0)
		rc = mdb_cursor_get(c, k, v, past);
	return rc;
}

int store_walk_open(store_walk *w, MDB_txn *txn, MDB_dbi dbi, const char *after, size_t len)
{
	*w = (store_walk){ NULL, after, len, false };
	return mdb_cursor_open(txn, dbi, &w->cur);
}

int store_walk_next(store_walk *w, MDB_val *k, MDB_val *v)
{
	if (w->started)
		return mdb_cursor_get(w->cur, k, v, MDB_NEXT);
	w->started = true;
	return store_cursor_after(w->cur, w->after, w->after_len, MDB_NEXT, k, v);
}
