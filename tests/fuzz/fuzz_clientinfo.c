/* SPDX-License-Identifier: ISC */
/* fuzz_clientinfo.c: ClientInfo JSON (the opened box) through its parser. */
#include <string.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "fuzz.h"
#include "util.h"

/*
 * Print what was decoded as ClientInfo JSON again and parse that: the
 * result must be the same struct (a decode -> encode -> decode fixpoint).
 */
static void
check_reparse(const struct clientinfo *ci)
{
	struct clientinfo	 again;
	cJSON			*o;
	char			*text, hex[2 * 32 + 1];
	const char		*why = NULL;

	if ((o = cJSON_CreateObject()) == NULL)
		abort();
	if (ci->ci_has_mesh_key) {
		util_hex_encode(ci->ci_mesh_key, 32, hex);
		cJSON_AddStringToObject(o, "meshKey", hex);
	}
	cJSON_AddNumberToObject(o, "version", ci->ci_version);
	cJSON_AddBoolToObject(o, "CanAckPings", ci->ci_can_ack_pings);
	cJSON_AddBoolToObject(o, "IsProber", ci->ci_is_prober);
	cJSON_AddStringToObject(o, "AppName", ci->ci_app_name);
	if ((text = cJSON_PrintUnformatted(o)) == NULL)
		abort();
	cJSON_Delete(o);
	FUZZ_ASSERT(frame_clientinfo_parse(text, strlen(text), &again,
	    &why) == 0);
	cJSON_free(text);
	FUZZ_ASSERT(again.ci_has_mesh_key == ci->ci_has_mesh_key);
	FUZZ_ASSERT(memcmp(again.ci_mesh_key, ci->ci_mesh_key, 32) == 0);
	FUZZ_ASSERT(again.ci_version == ci->ci_version);
	FUZZ_ASSERT(again.ci_can_ack_pings == ci->ci_can_ack_pings);
	FUZZ_ASSERT(again.ci_is_prober == ci->ci_is_prober);
	FUZZ_ASSERT(strcmp(again.ci_app_name, ci->ci_app_name) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct clientinfo	 ci;
	const char		*why = NULL;
	const char		*json;

	/* conn.c passes the opened box: not NUL-terminated, length given. */
	json = (const char *)fuzz_guarded(data, size);
	if (frame_clientinfo_parse(json, size, &ci, &why) != 0) {
		FUZZ_ASSERT(why != NULL && why[0] != '\0');
		return 0;
	}
	FUZZ_ASSERT(memchr(ci.ci_app_name, '\0', sizeof(ci.ci_app_name)) !=
	    NULL);
	/* A zero meshKey is the same as none; a non-zero one is kept. */
	FUZZ_ASSERT(ci.ci_has_mesh_key == !util_is_zero(ci.ci_mesh_key, 32));
	check_reparse(&ci);
	return 0;
}
