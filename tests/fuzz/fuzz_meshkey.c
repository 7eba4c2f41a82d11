/* SPDX-License-Identifier: ISC */
/* fuzz_meshkey.c: the mesh key file text through keys_parse_mesh. */
#include <ctype.h>
#include <string.h>

#include "fuzz.h"
#include "keys.h"
#include "util.h"

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t	 mesh[32];
	char	*text, hex[2 * 32 + 1];
	size_t	 b, e;
	int	 rc, want;

	/* keys_load_mesh hands it a NUL-terminated file; a NUL ends it. */
	text = fuzz_strdup(data, size);
	rc = keys_parse_mesh(text, mesh);
	/* An independent statement of the rule: 64 hex once trimmed. */
	for (b = 0; is_space(text[b]); b++)
		;
	for (e = strlen(text); e > b && is_space(text[e - 1]); e--)
		;
	want = e - b == 64;
	for (size_t i = b; want && i < e; i++)
		if (!isxdigit((unsigned char)text[i]))
			want = 0;
	FUZZ_ASSERT((rc == 0) == want);
	if (rc == 0) {
		util_hex_encode(mesh, 32, hex);
		for (size_t i = 0; i < 64; i++)
			FUZZ_ASSERT(hex[i] ==
			    tolower((unsigned char)text[b + i]));
	}
	free(text);
	return 0;
}
