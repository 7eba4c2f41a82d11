/* SPDX-License-Identifier: ISC */
/*
 * fuzz_localapi.c: a tailscaled LocalAPI whois reply through
 * auth_tailscaled_classify. The first byte picks the HTTP status (and
 * sometimes a transport error), the rest is the body.
 */
#include <curl/curl.h>

#include "auth_int.h"
#include "fuzz.h"

static const long statuses[] = { 200, 200, 200, 404, 400, 403, 500, 0 };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*body;
	char			*tmp;
	long			 status;
	int			 code;
	enum auth_reason	 r;

	if (size < 1)
		return 0;
	status = statuses[data[0] & 7];
	code = (data[0] & 0x80) ? CURLE_OPERATION_TIMEDOUT :
	    (data[0] & 0x40) ? CURLE_COULDNT_CONNECT : CURLE_OK;
	data++;
	size--;
	/* auth_http.c's buffer: the body and a NUL, and nothing after. */
	tmp = fuzz_strdup(data, size);
	body = (const char *)fuzz_guarded((const uint8_t *)tmp, size + 1);
	free(tmp);
	r = auth_tailscaled_classify(code, status, body, size);
	FUZZ_ASSERT(r == AUTH_OK || r == AUTH_NOT_IN_TAILNET ||
	    r == AUTH_TAILSCALED_TOO_OLD || r == AUTH_TAILSCALED_ERROR ||
	    r == AUTH_TAILSCALED_UNREACHABLE || r == AUTH_TIMEOUT);
	/* Only a 200 from a reachable tailscaled admits. */
	if (r == AUTH_OK)
		FUZZ_ASSERT(code == CURLE_OK && status == 200);
	if (code == CURLE_OK && status == 404)
		FUZZ_ASSERT(r == AUTH_NOT_IN_TAILNET);
	return 0;
}
