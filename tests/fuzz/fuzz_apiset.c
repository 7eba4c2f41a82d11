/* SPDX-License-Identifier: ISC */
/*
 * fuzz_apiset.c: -verify-clients-api bytes: the first byte picks the
 * parser (Tailscale devices, headscale nodes, the state file, the
 * credentials file, an OAuth token answer), the rest is its input.
 */
#include <stdlib.h>
#include <string.h>

#include "apiset.h"
#include "fuzz.h"

static void
check_set(const struct api_set *s)
{
	char	*text;
	size_t	 len;
	int64_t	 fetched = 0;
	char	 err[256];

	/* Sorted, unique, and every key found. */
	for (size_t i = 0; i < s->as_n; i++) {
		FUZZ_ASSERT(i == 0 || memcmp(s->as_devs[i - 1].ad_key,
		    s->as_devs[i].ad_key, 32) < 0);
		FUZZ_ASSERT(api_set_find(s, s->as_devs[i].ad_key) ==
		    &s->as_devs[i]);
	}
	FUZZ_ASSERT(api_set_admittable(s, 1796000000) <= s->as_n);
	FUZZ_ASSERT(api_set_revoked(s, 1796000000, s, 1796000000) == 0);
	/* The state file gives the same set back. */
	if ((text = api_state_format(s, "tailscale", "u", "-", 42, &len)) ==
	    NULL)
		return;
	{
		struct api_set *b = api_state_parse(text, len, "tailscale", "u",
		    "-", &fetched, err, sizeof(err));
		FUZZ_ASSERT(b != NULL);
		FUZZ_ASSERT(fetched == 42);
		FUZZ_ASSERT(api_set_equal(s, b));
		api_set_free(b);
	}
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*text;
	char		 err[256] = "";
	struct api_set	*s = NULL;
	int64_t		 n;

	if (size < 1)
		return 0;
	text = (const char *)fuzz_guarded(data + 1, size - 1);
	switch (data[0] % 5) {
	case 0:
	case 1:
		s = api_set_parse(data[0] % 5 == 0 ? API_TAILSCALE :
		    API_HEADSCALE, text, size - 1, err, sizeof(err));
		FUZZ_ASSERT(s != NULL || err[0] != '\0');
		break;
	case 2:
		s = api_state_parse(text, size - 1, "tailscale", "u", "-", &n,
		    err, sizeof(err));
		FUZZ_ASSERT(s != NULL || err[0] != '\0');
		break;
	case 3: {
		struct api_creds c;
		if (api_creds_parse(data[0] & 8 ? API_HEADSCALE : API_TAILSCALE,
		    text, size - 1, &c, err, sizeof(err)) == 0)
			FUZZ_ASSERT((c.ac_api_key != NULL) !=
			    (c.ac_client_id != NULL && c.ac_client_secret != NULL));
		else
			FUZZ_ASSERT(err[0] != '\0' && c.ac_api_key == NULL);
		api_creds_clear(&c);
		break;
	}
	default: {
		char *tok = NULL;
		if (api_token_parse(text, size - 1, &tok, &n, err,
		    sizeof(err)) == 0)
			FUZZ_ASSERT(tok != NULL && tok[0] != '\0' && n >= 1);
		else
			FUZZ_ASSERT(tok == NULL && err[0] != '\0');
		free(tok);
		break;
	}
	}
	if (s != NULL)
		check_set(s);
	api_set_free(s);
	return 0;
}
