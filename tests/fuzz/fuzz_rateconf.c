/* SPDX-License-Identifier: ISC */
/* fuzz_rateconf.c: -rate-config file bytes through rateconf_parse. */
#include "fuzz.h"
#include "ratelim.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rate_conf	 rc = { 7, 9 }, again;
	const char		*text;
	char			 err[256] = "";

	text = (const char *)fuzz_guarded(data, size);
	if (rateconf_parse(text, size, &rc, err, sizeof(err)) == -1) {
		/* Refused: a reason, and the caller's config untouched. */
		FUZZ_ASSERT(err[0] != '\0');
		FUZZ_ASSERT(rc.rc_bytes_per_sec == 7 && rc.rc_burst == 9);
		return 0;
	}
	/* Deterministic, and normalising keeps derper's invariants. */
	FUZZ_ASSERT(rateconf_parse(text, size, &again, err, sizeof(err)) == 0);
	FUZZ_ASSERT(again.rc_bytes_per_sec == rc.rc_bytes_per_sec &&
	    again.rc_burst == rc.rc_burst);
	rateconf_normalize(&rc);
	FUZZ_ASSERT(rc.rc_bytes_per_sec == 0 ? rc.rc_burst == 0 :
	    rc.rc_burst >= RATE_MIN_BURST);
	return 0;
}
