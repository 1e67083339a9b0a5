/*
 * input: plain, standard input or gzip-compressed data files.
 */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int input_open(input *in, const char *path, strbuf *err)
{
	memset(in, 0, sizeof(*in));
	if (strcmp(path, "-") == 0) {
		in->fp = stdin;
		in->is_stdin = 1;
		return 0;
	}

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		sb_addf(err, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
		sb_addf(err, "cannot read %s: %s", path,
			S_ISDIR(st.st_mode) ? "is a directory" : strerror(errno));
		close(fd);
		return -1;
	}
	in->size = (uint64_t)st.st_size;

	unsigned char magic[2] = { 0, 0 };
	ssize_t got = pread(fd, magic, 2, 0);
	if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
		int pipefd[2];
		if (pipe2(pipefd, O_CLOEXEC) != 0) {
			sb_addf(err, "cannot decompress %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, fd, 0);
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
		char *argv[] = { "gzip", "-dc", NULL };
		int rc = posix_spawnp(&in->child, "gzip", &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		close(fd);
		close(pipefd[1]);
		if (rc != 0) {
			close(pipefd[0]);
			sb_addf(err, "cannot run gzip to decompress %s: %s", path, strerror(rc));
			return -1;
		}
		in->fp = fdopen(pipefd[0], "rb");
		in->compressed = 1;
		return 0;
	}

	in->fp = fdopen(fd, "rb");
	if (!in->fp) {
		sb_addf(err, "cannot open %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return 0;
}

int input_close(input *in, strbuf *err)
{
	int ret = 0;
	if (in->fp && !in->is_stdin)
		fclose(in->fp);
	in->fp = NULL;
	if (in->child > 0) {
		int status = 0;
		/* If we stopped reading early gzip may be blocked on the pipe;
		 * closing it above gives it SIGPIPE, which is not an error. */
		while (waitpid(in->child, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			sb_addf(err, "gzip failed (exit %d): the file is corrupt or truncated",
				WEXITSTATUS(status));
			ret = -1;
		} else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGPIPE) {
			sb_addf(err, "gzip was killed by signal %d", WTERMSIG(status));
			ret = -1;
		}
		in->child = 0;
	}
	return ret;
}
