/* SPDX-License-Identifier: ISC */
/* fuzz.h: the libFuzzer entry point and helpers shared by the harnesses. */
#ifndef DERPD_FUZZ_H
#define DERPD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Every tests/fuzz/fuzz_<name>.c defines this and no main(): libFuzzer
 * supplies main() under make fuzz, tests/fuzz/replay.c under
 * make check-fuzz-replay. Returns 0; a broken property calls abort().
 */
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the harness checks: abort() (a crash to libFuzzer) if false. */
#define FUZZ_ASSERT(cond)						\
	fuzz_assert((cond) != 0, #cond, __FILE__, __LINE__)

static inline void
fuzz_assert(int ok, const char *what, const char *file, int line)
{
	if (ok)
		return;
	fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
	abort();
}

/* A NUL-terminated malloc'd copy of data, for C-string APIs; caller frees. */
static inline char *
fuzz_strdup(const uint8_t *data, size_t size)
{
	char	*s;

	if ((s = (char *)malloc(size + 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * A copy of data whose last byte sits right before an unmapped page, so a
 * read past the end faults even inside a library built without ASan (the
 * system cJSON). The copy lives until the next call; do not free it. The
 * mapping is file-static: one per harness, never shared.
 */
static inline const uint8_t *
fuzz_guarded(const uint8_t *data, size_t size)
{
	static uint8_t	*map;
	static size_t	 maplen;
	size_t		 pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t		 need = (size + pg - 1) / pg * pg + pg;
	uint8_t		*dst;

	if (need > maplen) {
		if (map != NULL)
			munmap(map, maplen);
		map = (uint8_t *)mmap(NULL, need, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED)
			abort();
		maplen = need;
		if (mprotect(map + maplen - pg, pg, PROT_NONE) == -1)
			abort();
	}
	dst = map + maplen - pg - size;
	if (size > 0)
		memcpy(dst, data, size);
	return dst;
}

#endif
