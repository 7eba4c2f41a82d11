/* SPDX-License-Identifier: ISC */
/* frame.c: pure DERP frame codec; every length rule of PROTOCOL.md 2.2. */
#include <netinet/in.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "util.h"

void
frame_put_header(uint8_t *p, uint8_t type, uint32_t len)
{
	p[0] = type;
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
}

enum frame_status
frame_get_header(const uint8_t *p, size_t n, uint8_t *type, uint32_t *len)
{
	if (n < FRAME_HDR_LEN)
		return FRAME_NEED_MORE;
	*type = p[0];
	*len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 8 | p[4];
	return FRAME_OK;
}

enum frame_status
frame_check_client_len(uint8_t type, uint32_t len, const char **why)
{
	switch (type) {
	case FRAME_SEND_PACKET:
		if (len < FRAME_KEY_LEN) {
			*why = "short send packet";
			return FRAME_BAD;
		}
		if (len > FRAME_KEY_LEN + FRAME_MAX_PACKET) {
			*why = "send packet too large";
			return FRAME_BAD;
		}
		break;
	case FRAME_FORWARD_PACKET:
		if (len < 2 * FRAME_KEY_LEN) {
			*why = "short forward packet";
			return FRAME_BAD;
		}
		if (len > 2 * FRAME_KEY_LEN + FRAME_MAX_PACKET) {
			*why = "forward packet too large";
			return FRAME_BAD;
		}
		break;
	case FRAME_PING:
		if (len < FRAME_PING_MIN || len > FRAME_PING_MAX) {
			*why = "bad ping length";
			return FRAME_BAD;
		}
		break;
	case FRAME_NOTE_PREFERRED:
		if (len != 1) {
			*why = "bad note preferred length";
			return FRAME_BAD;
		}
		break;
	case FRAME_WATCH_CONNS:
		if (len != 0) {
			*why = "bad watch conns length";
			return FRAME_BAD;
		}
		break;
	case FRAME_CLOSE_PEER:
		if (len != FRAME_KEY_LEN) {
			*why = "bad close peer length";
			return FRAME_BAD;
		}
		break;
	default:
		/* Unknown frames of any length are read and discarded. */
		break;
	}
	return FRAME_OK;
}

bool
frame_is_disco(const uint8_t *pkt, size_t len)
{
	return len >= FRAME_DISCO_MIN &&
	    memcmp(pkt, FRAME_DISCO_MAGIC, FRAME_DISCO_MAGIC_LEN) == 0;
}

size_t
frame_build_server_key(uint8_t *out, const uint8_t pub[32])
{
	frame_put_header(out, FRAME_SERVER_KEY, FRAME_SERVERKEY_LEN);
	memcpy(out + FRAME_HDR_LEN, FRAME_MAGIC, FRAME_MAGIC_LEN);
	memcpy(out + FRAME_HDR_LEN + FRAME_MAGIC_LEN, pub, FRAME_KEY_LEN);
	return FRAME_HDR_LEN + FRAME_SERVERKEY_LEN;
}

size_t
frame_build_peer_gone(uint8_t *out, const uint8_t key[32], uint8_t reason)
{
	frame_put_header(out, FRAME_PEER_GONE, FRAME_KEY_LEN + 1);
	memcpy(out + FRAME_HDR_LEN, key, FRAME_KEY_LEN);
	out[FRAME_HDR_LEN + FRAME_KEY_LEN] = reason;
	return FRAME_HDR_LEN + FRAME_KEY_LEN + 1;
}

size_t
frame_build_peer_present(uint8_t *out, const uint8_t key[32],
    const struct sockaddr *sa, uint8_t flags)
{
	uint8_t	*p = out + FRAME_HDR_LEN;
	uint16_t port = 0;

	frame_put_header(out, FRAME_PEER_PRESENT, FRAME_PEERPRESENT_LEN);
	memcpy(p, key, FRAME_KEY_LEN);
	p += FRAME_KEY_LEN;
	memset(p, 0, 16);
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		p[10] = 0xff;
		p[11] = 0xff;
		memcpy(p + 12, &s4->sin_addr, 4);
		port = ntohs(s4->sin_port);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)sa;
		memcpy(p, &s6->sin6_addr, 16);
		port = ntohs(s6->sin6_port);
	}
	p += 16;
	p[0] = (uint8_t)(port >> 8);
	p[1] = (uint8_t)port;
	p[2] = flags;
	return FRAME_HDR_LEN + FRAME_PEERPRESENT_LEN;
}

size_t
frame_build_pong(uint8_t *out, const uint8_t data[8])
{
	frame_put_header(out, FRAME_PONG, 8);
	memcpy(out + FRAME_HDR_LEN, data, 8);
	return FRAME_HDR_LEN + 8;
}

size_t
frame_build_keepalive(uint8_t *out)
{
	frame_put_header(out, FRAME_KEEP_ALIVE, 0);
	return FRAME_HDR_LEN;
}

int
frame_clientinfo_parse(const char *json, size_t len, struct clientinfo *ci,
    const char **why)
{
	cJSON		*root, *it;
	int		 rc = -1;

	const char	*endp = NULL;

	memset(ci, 0, sizeof(*ci));
	root = cJSON_ParseWithLengthOpts(json, len, &endp, 0);
	if (root == NULL) {
		*why = "client info is not json";
		return -1;
	}
	/* Like Go's json.Unmarshal: nothing but space after the value. */
	while (endp != NULL && endp < json + len && (*endp == ' ' ||
	    *endp == '\t' || *endp == '\n' || *endp == '\r'))
		endp++;
	if (endp == NULL || endp != json + len) {
		*why = "client info has trailing data";
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		*why = "client info is not a json object";
		goto out;
	}
	/* cJSON_GetObjectItem matches keys case-insensitively, as Go does. */
	if ((it = cJSON_GetObjectItem(root, "meshKey")) != NULL) {
		if (!cJSON_IsString(it) || util_hex_decode(it->valuestring,
		    strlen(it->valuestring), ci->ci_mesh_key, 32) != 0) {
			*why = "invalid mesh key";
			goto out;
		}
		ci->ci_has_mesh_key = !util_is_zero(ci->ci_mesh_key, 32);
	}
	/* null is a no-op for plain fields, as in Go; not for meshKey. */
	if ((it = cJSON_GetObjectItem(root, "version")) != NULL &&
	    !cJSON_IsNull(it)) {
		if (!cJSON_IsNumber(it)) {
			*why = "invalid version";
			goto out;
		}
		ci->ci_version = it->valueint;
	}
	if ((it = cJSON_GetObjectItem(root, "CanAckPings")) != NULL) {
		if (!cJSON_IsBool(it) && !cJSON_IsNull(it)) {
			*why = "invalid CanAckPings";
			goto out;
		}
		ci->ci_can_ack_pings = cJSON_IsTrue(it);
	}
	if ((it = cJSON_GetObjectItem(root, "IsProber")) != NULL) {
		if (!cJSON_IsBool(it) && !cJSON_IsNull(it)) {
			*why = "invalid IsProber";
			goto out;
		}
		ci->ci_is_prober = cJSON_IsTrue(it);
	}
	if ((it = cJSON_GetObjectItem(root, "AppName")) != NULL) {
		if (!cJSON_IsString(it) && !cJSON_IsNull(it)) {
			*why = "invalid AppName";
			goto out;
		}
		if (cJSON_IsString(it))
			util_strlcpy(ci->ci_app_name, it->valuestring,
			    sizeof(ci->ci_app_name));
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}
