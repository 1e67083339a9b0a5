/*
 * fuzz: the entry point every harness in tests/fuzz defines. Built with
 * clang's libFuzzer (make fuzz) or with driver.c, which replays files
 * (make test runs each harness over its seed corpus that way, with gcc).
 * Harnesses that need files get a scratch directory from fuzz_scratch_dir().
 */
#ifndef SHOPKEEPER_FUZZ_H
#define SHOPKEEPER_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- scratch directories ------------------------------------------------- */

static char fuzz_scratch_path[128];

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int flag,
				struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static inline void fuzz_rm_tree(const char *path)
{
	nftw(path, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fuzz_scratch_cleanup(void)
{
	fuzz_rm_tree(fuzz_scratch_path);
}

/* A new empty directory for a harness's files, on tmpfs when there is one
 * (the store fsyncs): shopkeeper-fuzz-NAME-PID under /dev/shm or /tmp,
 * removed at a normal exit. libFuzzer ends some runs without exit
 * handlers, so the directories of processes that are gone go first.
 * Returns the path (static storage). */
static inline const char *fuzz_scratch_dir(const char *name)
{
	struct stat st;
	const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
	char prefix[64];
	int plen = snprintf(prefix, sizeof(prefix), "shopkeeper-fuzz-%s-", name);
	DIR *d = opendir(base);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
			continue;
		long pid = strtol(e->d_name + plen, NULL, 10);
		if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
			char path[512];
			snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
			fuzz_rm_tree(path);
		}
	}
	if (d)
		closedir(d);
	snprintf(fuzz_scratch_path, sizeof(fuzz_scratch_path), "%s/%s%d", base, prefix,
		 (int)getpid());
	fuzz_rm_tree(fuzz_scratch_path);
	if (mkdir(fuzz_scratch_path, 0700) != 0)
		abort();
	atexit(fuzz_scratch_cleanup);
	return fuzz_scratch_path;
}

#endif
