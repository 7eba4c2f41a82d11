/* SPDX-License-Identifier: ISC */
/* fuzz_allowlist.c: allowlist file text through allowlist_parse. */
#include "auth_int.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct allowlist	*l;
	const char		*text;
	char			 err[256] = "";

	text = (const char *)fuzz_guarded(data, size);
	if ((l = allowlist_parse(text, size, "fuzz", err, sizeof(err))) ==
	    NULL) {
		FUZZ_ASSERT(err[0] != '\0');
		return 0;
	}
	/* A key takes a line of at least "nodekey:" and 64 hex digits. */
	FUZZ_ASSERT(allowlist_count(l) <= size / 72);
	allowlist_free(l);
	return 0;
}
