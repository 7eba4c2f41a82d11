/* SPDX-License-Identifier: ISC */
/* fuzz_control.c: an admin protocol request line through its decoder. */
#include <string.h>

#include "control_int.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request	 rw, ro;
	const char		*line;
	int			 rc_rw, rc_ro;

	/* control.c passes the line without its newline, not terminated. */
	line = (const char *)fuzz_guarded(data, size);
	rc_rw = control_request_parse(line, size, 0, &rw);
	rc_ro = control_request_parse(line, size, 1, &ro);
	if (rc_rw == 0) {
		FUZZ_ASSERT(rw.rq_cmd >= 0 && rw.rq_name != NULL);
		FUZZ_ASSERT(rw.rq_code == NULL);
	} else {
		FUZZ_ASSERT(rc_rw == -1 && rw.rq_cmd == -1);
		FUZZ_ASSERT(rw.rq_code != NULL && rw.rq_msg != NULL);
	}
	/* The read-only socket accepts a subset, and decodes the same id. */
	FUZZ_ASSERT(rc_ro == 0 ? rc_rw == 0 : rc_ro == -1);
	FUZZ_ASSERT(memcmp(&rw.rq_id, &ro.rq_id, sizeof(rw.rq_id)) == 0);
	if (rc_ro == 0)
		FUZZ_ASSERT(strncmp(ro.rq_name, "show ", 5) == 0);
	if (rc_rw == 0 && rc_ro == -1)
		FUZZ_ASSERT(strcmp(ro.rq_code, "permission_denied") == 0);
	control_request_cleanup(&rw);
	control_request_cleanup(&ro);
	return 0;
}
