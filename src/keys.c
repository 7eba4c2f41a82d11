/* SPDX-License-Identifier: ISC */
/* keys.c: server key file handling with libsodium. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "keys.h"
#include "util.h"

struct server_key *
keys_generate(void)
{
	struct server_key *k;

	if ((k = sodium_malloc(sizeof(*k))) == NULL)
		return NULL;
	randombytes_buf(k->sk_priv, sizeof(k->sk_priv));
	k->sk_priv[0] &= 248;
	k->sk_priv[31] = (k->sk_priv[31] & 127) | 64;
	keys_derive_public(k);
	return k;
}

void
keys_derive_public(struct server_key *k)
{
	crypto_scalarmult_base(k->sk_pub, k->sk_priv);
}

void
keys_free(struct server_key *k)
{
	if (k != NULL)
		sodium_free(k);	/* wipes before freeing */
}

int
keys_check_secrecy(const char *path, char *err, size_t errlen)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s: mode %04o is group or world "
		    "accessible; chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

int
keys_parse_file(const char *json, size_t len, uint8_t priv[32], char *err,
    size_t errlen)
{
	cJSON	*root, *it;
	int	 rc = -1;

	if ((root = cJSON_ParseWithLength(json, len)) == NULL) {
		snprintf(err, errlen, "not valid JSON");
		return -1;
	}
	it = cJSON_GetObjectItem(root, "PrivateKey");
	if (it == NULL || !cJSON_IsString(it))
		snprintf(err, errlen, "no PrivateKey string");
	else if (util_key_parse(it->valuestring, PRIVKEY_PREFIX, priv) != 0)
		snprintf(err, errlen, "PrivateKey is not privkey:<64 hex>");
	else
		rc = 0;
	if (it != NULL && cJSON_IsString(it))
		sodium_memzero(it->valuestring, strlen(it->valuestring));
	cJSON_Delete(root);
	return rc;
}

/* Create every missing parent directory of path (0777 minus umask). */
static int
mkparent(const char *path, char *err, size_t errlen)
{
	char	 dir[PATH_MAX];
	char	*slash, *p;

	if (util_strlcpy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(dir, 0777) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", dir,
			    strerror(errno));
			return -1;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

static int
write_key_file(const char *path, const struct server_key *k, char *err,
    size_t errlen)
{
	char	 text[KEY_TEXT_SIZE], body[128];
	int	 n, rc;

	if (mkparent(path, err, errlen) == -1)
		return -1;
	util_key_format(k->sk_priv, PRIVKEY_PREFIX, text);
	n = snprintf(body, sizeof(body), "{\n\t\"PrivateKey\": \"%s\"\n}\n",
	    text);
	sodium_memzero(text, sizeof(text));
	rc = util_write_file_atomic(path, body, (size_t)n, 0600, err, errlen);
	sodium_memzero(body, sizeof(body));
	return rc;
}

struct server_key *
keys_load_or_create(const char *path, char *err, size_t errlen)
{
	struct server_key	*k;
	char			*buf;
	size_t			 len;
	char			 perr[256];

	if (access(path, F_OK) == -1 && errno == ENOENT) {
		if ((k = keys_generate()) == NULL) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		if (write_key_file(path, k, err, errlen) == -1) {
			keys_free(k);
			return NULL;
		}
		return k;
	}
	if (keys_check_secrecy(path, err, errlen) == -1)
		return NULL;
	if ((buf = util_read_small_file(path, 64 * 1024, 0, &len, err,
	    errlen)) == NULL)
		return NULL;
	if ((k = sodium_malloc(sizeof(*k))) == NULL) {
		free(buf);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (keys_parse_file(buf, len, k->sk_priv, perr, sizeof(perr)) != 0) {
		snprintf(err, errlen, "%s: %s", path, perr);
		sodium_memzero(buf, len);
		free(buf);
		keys_free(k);
		return NULL;
	}
	sodium_memzero(buf, len);
	free(buf);
	keys_derive_public(k);
	return k;
}

int
keys_parse_mesh(const char *text, uint8_t mesh[32])
{
	size_t	 n;

	while (*text == ' ' || *text == '\t' || *text == '\n' ||
	    *text == '\r')
		text++;
	n = strlen(text);
	while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' ||
	    text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	if (util_hex_decode(text, n, mesh, 32) != 0)
		return -1;
	return 0;
}

int
keys_load_mesh(const char *path, uint8_t mesh[32], char *err, size_t errlen)
{
	char	*buf;
	size_t	 len;
	int	 rc;

	if (keys_check_secrecy(path, err, errlen) == -1)
		return -1;
	if ((buf = util_read_small_file(path, 4096, 0, &len, err,
	    errlen)) == NULL)
		return -1;
	rc = keys_parse_mesh(buf, mesh);
	sodium_memzero(buf, len);
	free(buf);
	if (rc != 0)
		snprintf(err, errlen, "%s: mesh key must be 64 hex characters",
		    path);
	return rc;
}
