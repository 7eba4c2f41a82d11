/* SPDX-License-Identifier: ISC */
/* replay.c: run a fuzz harness over saved inputs, without libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_MAX	(16 * 1024 * 1024)

/* Set by an ASan/UBSan runtime when linked in; NULL in a plain build. */
extern void __sanitizer_set_death_callback(void (*)(void))
    __attribute__((weak));

/* The input being run, for the crash message (replay is one thread). */
static const char *replay_current;

static void
replay_name_current(void)
{
	const char *msg = "replay: crashed on input ";

	if (replay_current == NULL)
		return;
	/* Only write(2) here: this runs from a signal handler. */
	(void)!write(STDERR_FILENO, msg, strlen(msg));
	(void)!write(STDERR_FILENO, replay_current, strlen(replay_current));
	(void)!write(STDERR_FILENO, "\n", 1);
}

static void
replay_crash_cb(int sig)
{
	replay_name_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Run the harness on one file; 0, or -1 if it cannot be read. */
static int
replay_file(const char *path)
{
	FILE	*f;
	uint8_t	*buf;
	size_t	 n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(REPLAY_MAX + 1)) == NULL) {
		fclose(f);
		fprintf(stderr, "replay: out of memory\n");
		return -1;
	}
	n = fread(buf, 1, REPLAY_MAX + 1, f);
	fclose(f);
	if (n > REPLAY_MAX) {
		free(buf);
		fprintf(stderr, "replay: %s: larger than %d bytes\n", path,
		    REPLAY_MAX);
		return -1;
	}
	/* Exactly n bytes, as libFuzzer passes them, so ASan sees overreads. */
	buf = realloc(buf, n > 0 ? n : 1);
	if (buf == NULL) {
		fprintf(stderr, "replay: out of memory\n");
		return -1;
	}
	replay_current = path;
	LLVMFuzzerTestOneInput(buf, n);
	replay_current = NULL;
	free(buf);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Run every regular file in dir (sorted, dot files skipped). A missing
 * directory holds no inputs yet (git keeps no empty regress/ dirs).
 */
static int
replay_dir(const char *dir, int *count)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		**names = NULL, path[4096];
	size_t		 n = 0, cap = 0;
	int		 rc = 0;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof(*names));
			if (names == NULL)
				abort();
		}
		if ((names[n++] = strdup(de->d_name)) == NULL)
			abort();
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >=
		    (int)sizeof(path)) {
			fprintf(stderr, "replay: %s/%s: path too long\n", dir,
			    names[i]);
			rc = -1;
		} else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) == -1)
				rc = -1;
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct stat	 st;
	int		 count = 0, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s dir|file ...\n", argv[0]);
		return 2;
	}
	/* A sanitizer keeps its own fault handlers (they print the stack). */
	signal(SIGABRT, replay_crash_cb);
	if (__sanitizer_set_death_callback != NULL)
		__sanitizer_set_death_callback(replay_name_current);
	else {
		signal(SIGBUS, replay_crash_cb);
		signal(SIGFPE, replay_crash_cb);
		signal(SIGILL, replay_crash_cb);
		signal(SIGSEGV, replay_crash_cb);
	}
	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(argv[i]) == -1)
				rc = 1;
			else
				count++;
		} else if (replay_dir(argv[i], &count) == -1)
			rc = 1;
	}
	if (count == 0) {
		fprintf(stderr, "replay: %s: no inputs\n", argv[0]);
		return 1;
	}
	printf("%s: %d inputs replayed\n", argv[0], count);
	return rc;
}
