/* SPDX-License-Identifier: ISC */
/*
 * fuzz_policy.c: policy file text through policy_parse, and the same
 * bytes as a whois reply through policy_ident_parse; a parsed policy is
 * matched against the parsed identity (when both parse).
 */
#include <string.h>

#include "auth_int.h"
#include "fuzz.h"
#include "policy.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy		*p;
	struct policy_ident	 id;
	const char		*text;
	char			 err[512] = "";
	int			 have_id, i;

	text = (const char *)fuzz_guarded(data, size);
	have_id = policy_ident_parse(text, size, 1800000000, &id, err,
	    sizeof(err)) == 0;
	err[0] = '\0';
	if ((p = policy_parse(text, size, "fuzz", err, sizeof(err))) == NULL) {
		/* Every refusal says why, and names the file. */
		FUZZ_ASSERT(strncmp(err, "fuzz: ", 6) == 0);
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
	} else {
		FUZZ_ASSERT(policy_count(p) <= POLICY_MAX_RULES);
		for (size_t k = 0; k < policy_count(p); k++)
			FUZZ_ASSERT(strlen(policy_rule_name(p, k)) > 0 &&
			    strlen(policy_rule_name(p, k)) < POLICY_NAME_MAX);
		if (have_id) {
			i = policy_match(p, &id);
			FUZZ_ASSERT(i >= -1 && i < (int)policy_count(p));
			if (i >= 0)
				FUZZ_ASSERT(policy_rule_matches(p, (size_t)i,
				    &id));
		}
		policy_free(p);
	}
	if (have_id)
		policy_ident_cleanup(&id);
	return 0;
}
