/* SPDX-License-Identifier: ISC */
/*
 * fuzz_acme.c: what an ACME server (or anyone on the path to it) sends:
 * the first byte picks the parser (directory, order, authorization,
 * problem, Retry-After, base64), the rest is the body. Each parser either
 * refuses or fills its struct with NUL-terminated strings that fit; the
 * base64 encoder and decoder round-trip.
 */
#include <string.h>
#include <time.h>

#include "acme_msg.h"
#include "fuzz.h"

static void
terminated(const char *s, size_t cap)
{
	FUZZ_ASSERT(memchr(s, '\0', cap) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*body = (const char *)data + 1;
	size_t		 len = size - 1;

	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0: {
		struct acme_dir d;
		if (acme_parse_directory(body, len, &d) == 0) {
			terminated(d.ad_new_nonce, sizeof(d.ad_new_nonce));
			terminated(d.ad_new_order, sizeof(d.ad_new_order));
		}
		break;
	}
	case 1: {
		struct acme_order o;
		if (acme_parse_order(body, len, &o) == 0) {
			FUZZ_ASSERT(o.ao_nauthz <= ACME_MAX_AUTHZ);
			for (size_t i = 0; i < o.ao_nauthz; i++)
				terminated(o.ao_authz[i], ACME_URL_MAX);
			terminated(o.ao_certificate, ACME_URL_MAX);
		}
		break;
	}
	case 2: {
		struct acme_authz a;
		if (acme_parse_authz(body, len, &a) == 0) {
			FUZZ_ASSERT(a.az_nchal <= ACME_MAX_CHAL);
			for (size_t i = 0; i < a.az_nchal; i++)
				terminated(a.az_chal[i].ac_token,
				    ACME_TOKEN_MAX);
			terminated(a.az_error, sizeof(a.az_error));
		}
		break;
	}
	case 3: {
		struct acme_problem p;
		if (acme_parse_problem(body, len, &p) == 0)
			FUZZ_ASSERT(acme_problem_short(p.ap_type) != NULL);
		break;
	}
	case 4: {
		char v[128];
		int64_t s;
		size_t n = len < sizeof(v) - 1 ? len : sizeof(v) - 1;
		memcpy(v, body, n);
		v[n] = '\0';
		s = acme_retry_after(v, (time_t)1700000000);
		FUZZ_ASSERT(s >= -1 && s <= 86400);
		break;
	}
	case 5: {
		char enc[700], txt[520];
		uint8_t dec[520];
		size_t n = len < 512 ? len : 512, el;
		int dl;
		el = acme_b64url((const uint8_t *)body, n, enc, sizeof(enc));
		FUZZ_ASSERT(el > 0 || n == 0);
		if (n > 0) {
			dl = acme_b64_decode(enc, dec, sizeof(dec));
			FUZZ_ASSERT(dl == (int)n);
			FUZZ_ASSERT(memcmp(dec, body, n) == 0);
		}
		/* Arbitrary text: decodes or not, never past the buffer. */
		memcpy(txt, body, n);
		txt[n] = '\0';
		dl = acme_b64_decode(txt, dec, 16);
		FUZZ_ASSERT(dl >= -1 && dl <= 16);
		break;
	}
	}
	return 0;
}
