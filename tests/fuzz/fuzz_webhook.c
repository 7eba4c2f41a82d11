/* SPDX-License-Identifier: ISC */
/*
 * fuzz_webhook.c: an admission URL reply through auth_url_classify. The
 * first byte picks the HTTP status and the transport result, the rest
 * is the body.
 */
#include <curl/curl.h>

#include "auth_int.h"
#include "fuzz.h"

static const long statuses[] = { 200, 200, 200, 200, 500, 403, 204, 0 };

static enum auth_reason
classify(int code, long status, const uint8_t *data, size_t size)
{
	const char	*body;
	char		*tmp;

	/* auth_http.c's buffer: the body and a NUL, and nothing after. */
	tmp = fuzz_strdup(data, size);
	body = (const char *)fuzz_guarded((const uint8_t *)tmp, size + 1);
	free(tmp);
	return auth_url_classify(code, status, body, size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum auth_reason	 r;
	long			 status;
	int			 code;

	if (size < 1)
		return 0;
	status = statuses[data[0] & 7];
	code = (data[0] & 0x80) ? CURLE_WRITE_ERROR :
	    (data[0] & 0x40) ? CURLE_COULDNT_CONNECT : CURLE_OK;
	data++;
	size--;
	r = classify(code, status, data, size);
	FUZZ_ASSERT(r == AUTH_OK || r == AUTH_URL_DENIED ||
	    r == AUTH_URL_BAD_RESPONSE || r == AUTH_URL_STATUS ||
	    r == AUTH_URL_UNREACHABLE);
	if (r == AUTH_OK)
		FUZZ_ASSERT(code == CURLE_OK && status == 200 &&
		    size <= AUTH_URL_BODY_MAX);
	/* Only the first 4 KiB are decoded, as derper does. */
	if (code == CURLE_OK && status == 200 && size > 4096 &&
	    size <= AUTH_URL_BODY_MAX)
		FUZZ_ASSERT(classify(code, status, data, 4096) == r);
	return 0;
}
