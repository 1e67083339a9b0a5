/*
 * model_sum: the model's checksum file, DIR/model.sum: one line,
 * "crc32c HEX SIZE\n", the CRC-32C and byte size of DIR/model.mdb.
 * Written by model_writer_finish, checked by model_open before it reads
 * any page of the model (store_internal.h).
 *
 * Why a checksum: LMDB does not checksum its pages. A model with one page
 * zeroed passed every check model_open made and then aborted the server
 * inside mdb.c on the first request that walked through that page.
 *
 * Why CRC-32C and not xxHash: it needs no new dependency (written here in
 * 60 lines); x86-64 CPUs since 2008 compute it in hardware (the SSE4.2
 * crc32 instruction, checked at run time), at memory speed; and a CRC is
 * made for this job: it detects every burst of damage up to 32 bits and
 * misses random damage with probability 2^-32, while xxHash is a fast
 * hash with no such guarantee. Nobody forges damage here: integrity
 * against an attacker would need a signature, not a checksum.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "model_format.h"
#include "store_internal.h"
#include "util.h"

#define SUM_LINE_MAX 64
#define READ_CHUNK (1u << 20)

/* The CRC-32C and size of what fd holds, read from its start. Returns 0
 * or -1 (errno set). */
static int file_crc(int fd, uint32_t *crc, uint64_t *size)
{
	unsigned char *buf = xmalloc(READ_CHUNK);
	uint32_t c = 0;
	uint64_t n = 0;
	int ret = 0;
	for (;;) {
		ssize_t got = pread(fd, buf, READ_CHUNK, (off_t)n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -1;
			break;
		}
		if (got == 0)
			break;
		c = crc32c(c, buf, (size_t)got);
		n += (uint64_t)got;
	}
	free(buf);
	*crc = c;
	*size = n;
	return ret;
}

int model_sum_write(const char *dir, const char *data_path, strbuf *err)
{
	strbuf path = STRBUF_INIT, tmp = STRBUF_INIT;
	int ret = STORE_ERROR, fd = open(data_path, O_RDONLY | O_CLOEXEC);
	uint32_t crc;
	uint64_t size;
	sb_addf(&path, "%s/%s", dir, MODEL_SUM_FILE);
	sb_addf(&tmp, "%s.tmp", path.buf);
	if (fd < 0 || file_crc(fd, &crc, &size) != 0) {
		sb_addf(err, "model: cannot read %s: %s", data_path, strerror(errno));
		goto out;
	}
	close(fd);
	char line[SUM_LINE_MAX];
	int len = snprintf(line, sizeof(line), "crc32c %08" PRIx32 " %" PRIu64 "\n", crc, size);
	errno = 0;
	fd = open(tmp.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)len) != len || fsync(fd) != 0) {
		sb_addf(err, "model: cannot write %s: %s", tmp.buf,
			errno ? strerror(errno) : "short write");
		goto out;
	}
	if (rename(tmp.buf, path.buf) != 0) {
		sb_addf(err, "model: cannot rename %s to %s: %s", tmp.buf, path.buf, strerror(errno));
		goto out;
	}
	if (store_fsync_dir(dir) != 0) {
		sb_addf(err, "model: cannot sync %s: %s", dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret)
		unlink(tmp.buf);
	sb_release(&path);
	sb_release(&tmp);
	return ret;
}

int model_sum_check(const char *dir, const char *data_path, int fd, strbuf *err)
{
	strbuf path = STRBUF_INIT;
	int ret = STORE_CORRUPT;
	sb_addf(&path, "%s/%s", dir, MODEL_SUM_FILE);
	char line[SUM_LINE_MAX + 1];
	FILE *f = fopen(path.buf, "re");
	if (!f) {
		if (errno == ENOENT)
			sb_addf(err, "model %s has no checksum file %s (train writes it last: an older "
				     "shopkeeper wrote this model, or train did not finish); retrain with "
				     "shopkeeper train --out %s", data_path, path.buf, dir);
		else
			sb_addf(err, "cannot read the model's checksum file %s: %s", path.buf,
				strerror(errno));
		ret = errno == ENOENT ? STORE_CORRUPT : STORE_ERROR;
		goto out;
	}
	size_t n = fread(line, 1, SUM_LINE_MAX, f);
	fclose(f);
	line[n] = '\0';
	uint32_t want_crc, crc;
	uint64_t want_size, size;
	char tail;
	if (sscanf(line, "crc32c %8" SCNx32 " %" SCNu64 "%c", &want_crc, &want_size, &tail) != 3 ||
	    tail != '\n') {
		sb_addf(err, "the model's checksum file %s is damaged; retrain with shopkeeper train "
			     "--out %s", path.buf, dir);
		goto out;
	}
	if (file_crc(fd, &crc, &size) != 0) {
		sb_addf(err, "cannot read model %s: %s", data_path, strerror(errno));
		ret = STORE_ERROR;
		goto out;
	}
	if (size != want_size || crc != want_crc) {
		sb_addf(err, "model %s is damaged: %" PRIu64 " bytes with CRC-32C %08" PRIx32
			     ", its checksum file %s records %" PRIu64 " bytes with %08" PRIx32
			     "; retrain with shopkeeper train --out %s, or copy the model again",
			data_path, size, crc, path.buf, want_size, want_crc, dir);
		goto out;
	}
	ret = 0;
out:
	sb_release(&path);
	return ret;
}
