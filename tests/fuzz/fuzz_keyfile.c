/* SPDX-License-Identifier: ISC */
/* fuzz_keyfile.c: the server key file (derper's JSON) through its parser. */
#include <string.h>

#include "fuzz.h"
#include "keys.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t	 priv[32], again[32];
	char	 err[128], text[KEY_TEXT_SIZE], body[128];
	int	 n;

	memset(err, 'x', sizeof(err));
	/* The file text as keys_load_or_create reads it, length given. */
	if (keys_parse_file((const char *)fuzz_guarded(data, size), size,
	    priv, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_ASSERT(err[0] != '\0');
		return 0;
	}
	/* What derpd writes for that key must read back as the same key. */
	util_key_format(priv, PRIVKEY_PREFIX, text);
	n = snprintf(body, sizeof(body), "{\n\t\"PrivateKey\": \"%s\"\n}\n",
	    text);
	FUZZ_ASSERT(n > 0 && (size_t)n < sizeof(body));
	FUZZ_ASSERT(keys_parse_file(body, (size_t)n, again, err,
	    sizeof(err)) == 0);
	FUZZ_ASSERT(memcmp(priv, again, 32) == 0);
	return 0;
}
