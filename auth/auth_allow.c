/* SPDX-License-Identifier: ISC */
/* auth_allow.c: the static allowlist backend (--allow-keys FILE). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth_int.h"
#include "log.h"
#include "util.h"

struct allowlist {
	uint8_t		(*l_keys)[32];	/* sorted */
	size_t		 l_n;
};

static int
keycmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/* Longest line taken, newline excluded (the file form always had it). */
#define ALLOW_LINE_MAX	510
/* A bigger allowlist file is refused (about 900,000 keys). */
#define ALLOW_FILE_MAX	(64 * 1024 * 1024)

struct allowlist *
allowlist_parse(const char *buf, size_t len, const char *name, char *err,
    size_t errlen)
{
	struct allowlist	*l;
	size_t			 cap = 0, lineno = 0, off = 0;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (off < len) {
		const char	*nl = memchr(buf + off, '\n', len - off);
		size_t		 n = nl != NULL ? (size_t)(nl - (buf + off)) :
				    len - off;
		char		 line[ALLOW_LINE_MAX + 1], *p, *e;

		lineno++;
		if (n > ALLOW_LINE_MAX) {
			snprintf(err, errlen, "-allow-keys: %s:%zu: line too "
			    "long", name, lineno);
			goto fail;
		}
		if (memchr(buf + off, '\0', n) != NULL) {
			snprintf(err, errlen, "-allow-keys: %s:%zu: NUL byte",
			    name, lineno);
			goto fail;
		}
		memcpy(line, buf + off, n);
		line[n] = '\0';
		off += n + (nl != NULL);
		p = line;
		if ((e = strchr(p, '#')) != NULL)
			*e = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		e = p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t' ||
		    e[-1] == '\r'))
			*--e = '\0';
		if (*p == '\0')
			continue;
		if (l->l_n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			uint8_t (*nk)[32] = realloc(l->l_keys, nc * 32);
			if (nk == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			l->l_keys = nk;
			cap = nc;
		}
		if (util_key_parse(p, NODEKEY_PREFIX, l->l_keys[l->l_n]) != 0) {
			snprintf(err, errlen, "-allow-keys: %s:%zu: not a "
			    "nodekey:<64 hex> key", name, lineno);
			goto fail;
		}
		l->l_n++;
	}
	if (l->l_n > 0)
		qsort(l->l_keys, l->l_n, 32, keycmp);
	return l;
fail:
	allowlist_free(l);
	return NULL;
}

struct allowlist *
allowlist_load(const char *path, char *err, size_t errlen)
{
	struct allowlist	*l;
	FILE			*f;
	char			*buf = NULL;
	size_t			 len = 0, cap = 0, n;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "-allow-keys: %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			char *nb;
			if (cap >= ALLOW_FILE_MAX) {
				snprintf(err, errlen, "-allow-keys: %s: over "
				    "%d bytes", path, ALLOW_FILE_MAX);
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			if ((nb = realloc(buf, cap)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		if ((n = fread(buf + len, 1, cap - len, f)) == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "-allow-keys: %s: read error", path);
		goto fail;
	}
	fclose(f);
	l = allowlist_parse(buf, len, path, err, errlen);
	free(buf);
	return l;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

void
allowlist_free(struct allowlist *l)
{
	if (l == NULL)
		return;
	free(l->l_keys);
	free(l);
}

bool
allowlist_has(const struct allowlist *l, const uint8_t key[32])
{
	return l != NULL && l->l_n > 0 &&
	    bsearch(key, l->l_keys, l->l_n, 32, keycmp) != NULL;
}

size_t
allowlist_count(const struct allowlist *l)
{
	return l == NULL ? 0 : l->l_n;
}

static bool
allow_enabled(const struct auth_conf *c)
{
	return c->ac_allow_file[0] != '\0';
}

/* Load the file; the backend's state is the list (old one freed). */
static int
allow_load(struct auth *a, char *err, size_t errlen)
{
	const char		*path = auth_conf_of(a)->ac_allow_file;
	struct allowlist	*l;

	if ((l = allowlist_load(path, err, errlen)) == NULL)
		return -1;
	allowlist_free(auth_backend_state(a, &auth_backend_allow));
	auth_set_backend_state(a, &auth_backend_allow, l);
	log_info("allowlist %s: %zu keys", path, allowlist_count(l));
	return 0;
}

static void
allow_check(struct auth_flight *f)
{
	auth_count_backend_request(f->f_auth, "allowlist");
	auth_flight_step(f, allowlist_has(auth_backend_state(f->f_auth,
	    &auth_backend_allow), f->f_key) ? AUTH_OK : AUTH_NOT_IN_ALLOWLIST);
}

static void
allow_fini(struct auth *a)
{
	allowlist_free(auth_backend_state(a, &auth_backend_allow));
	auth_set_backend_state(a, &auth_backend_allow, NULL);
}

static void
allow_ctl(struct auth *a, cJSON *o)
{
	cJSON_AddNumberToObject(o, "allowlist_keys", (double)allowlist_count(
	    auth_backend_state(a, &auth_backend_allow)));
}

const struct auth_backend auth_backend_allow = {
	.ab_name = "allowlist",
	.ab_enabled = allow_enabled,
	.ab_init = allow_load,
	.ab_check = allow_check,
	.ab_fini = allow_fini,
	.ab_reload = allow_load,
	.ab_ctl = allow_ctl,
};
