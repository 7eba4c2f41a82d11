/* SPDX-License-Identifier: ISC */
/* parser.c: match derpctl's words against the pattern-string table. */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parser.h"
#include "util.h"

/*
 * The grammar. The same strings appear in usage, in derpctl(8) and (the
 * keywords) on the wire in derpd-control(7). Order is the usage order.
 */
const struct ctl_cmd parse_cmds[] = {
	{ .cc_pattern = "show clients [prefix]",
	    .cc_action = CTL_SHOW_CLIENTS },
	{ .cc_pattern = "show client <key>",
	    .cc_action = CTL_SHOW_CLIENT },
	{ .cc_pattern = "show rejects",
	    .cc_action = CTL_SHOW_REJECTS },
	{ .cc_pattern = "show stats",
	    .cc_action = CTL_SHOW_STATS },
	{ .cc_pattern = "show admission",
	    .cc_action = CTL_SHOW_ADMISSION },
	{ .cc_pattern = "show mesh",
	    .cc_action = CTL_SHOW_MESH },
	{ .cc_pattern = "show certs",
	    .cc_action = CTL_SHOW_CERTS },
	{ .cc_pattern = "kick <key>",
	    .cc_action = CTL_KICK },
	{ .cc_pattern = "reload",
	    .cc_action = CTL_RELOAD },
	{ .cc_pattern = "log verbose",
	    .cc_action = CTL_LOG },
	{ .cc_pattern = "log brief",
	    .cc_action = CTL_LOG },
	{ .cc_pattern = "monitor",
	    .cc_action = CTL_MONITOR },
	{ .cc_pattern = NULL }
};

/* Argument types, by the name used in the pattern. */
static const struct {
	const char	*name;
	int		(*parse)(const char *, char *, size_t);
	const char	*want;
} arg_types[] = {
	{ "key", parse_key, "nodekey:<64 hex digits> or 64 hex digits" },
	{ "prefix", parse_key_prefix,
	    "nodekey:<up to 64 hex digits> or 1 to 64 hex digits" },
};

#define TOK_MAX		8
#define TOK_TEXT_MAX	32

enum tok_type {
	TOK_WORD,
	TOK_REQUIRED,
	TOK_OPTIONAL
};

struct tok {
	enum tok_type	 t_type;
	char		 t_text[TOK_TEXT_MAX];	/* keyword or argument name */
};

/* Why a command stopped matching; later entries are reported first. */
enum fail_kind {
	FAIL_NONE,
	FAIL_SHADOWED,		/* another keyword was typed in full */
	FAIL_WORD,
	FAIL_EXTRA,
	FAIL_MISSING,
	FAIL_ARG
};

struct cand {
	const struct ctl_cmd	*c_cmd;
	struct tok		 c_tok[TOK_MAX];
	size_t			 c_ntok;
	enum fail_kind		 c_fail;
	size_t			 c_depth;	/* argv index of the failure */
	char			 c_argerr[160];
	struct parse_result	 c_res;
};

static void
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 len = strlen(err);

	if (len >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + len, errlen - len, fmt, ap);
	va_end(ap);
}

static int
tokenize(const char *pattern, struct tok *tok, size_t *ntok)
{
	const char	*p = pattern, *end;
	size_t		 len, n = 0;

	while (*p != '\0') {
		end = strchr(p, ' ');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (n == TOK_MAX || len < 1 || len >= TOK_TEXT_MAX)
			return -1;
		if ((p[0] == '<' && p[len - 1] == '>') ||
		    (p[0] == '[' && p[len - 1] == ']')) {
			if (len < 3)
				return -1;
			tok[n].t_type = p[0] == '<' ? TOK_REQUIRED :
			    TOK_OPTIONAL;
			memcpy(tok[n].t_text, p + 1, len - 2);
			tok[n].t_text[len - 2] = '\0';
		} else {
			tok[n].t_type = TOK_WORD;
			memcpy(tok[n].t_text, p, len);
			tok[n].t_text[len] = '\0';
		}
		n++;
		p += len;
		if (*p == ' ')
			p++;
	}
	*ntok = n;
	return 0;
}

/* Check and store one argument; 0, or -1 with c_argerr set. */
static int
cand_arg(struct cand *c, const struct tok *t, const char *word)
{
	struct parse_result	*res = &c->c_res;
	struct parse_arg	*a;
	size_t			 i;

	for (i = 0; i < sizeof(arg_types) / sizeof(arg_types[0]); i++)
		if (strcmp(arg_types[i].name, t->t_text) == 0)
			break;
	if (i == sizeof(arg_types) / sizeof(arg_types[0]) ||
	    res->pr_nargs == PARSE_MAXARGS) {
		snprintf(c->c_argerr, sizeof(c->c_argerr),
		    "%s: bad pattern", c->c_cmd->cc_pattern);
		return -1;
	}
	a = &res->pr_args[res->pr_nargs];
	if (arg_types[i].parse(word, a->pa_value, sizeof(a->pa_value)) == -1) {
		snprintf(c->c_argerr, sizeof(c->c_argerr),
		    "invalid %s \"%.80s\": want %s", t->t_text, word,
		    arg_types[i].want);
		return -1;
	}
	util_strlcpy(a->pa_name, t->t_text, sizeof(a->pa_name));
	res->pr_nargs++;
	return 0;
}

static void
list_patterns(struct cand *cands, size_t n, enum fail_kind kind,
    size_t depth, char *err, size_t errlen)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (cands[i].c_fail == kind && cands[i].c_depth == depth)
			errf(err, errlen, "\n\t%s", cands[i].c_cmd->cc_pattern);
}

static void
join_words(int from, int to, char *const argv[], char *buf, size_t len)
{
	int	 i;

	buf[0] = '\0';
	for (i = from; i < to; i++)
		errf(buf, len, "%s%s", i > from ? " " : "", argv[i]);
}

/* No candidate matched: report the one that got furthest. */
static void
report_failure(struct cand *cands, size_t n, int argc, char *const argv[],
    char *err, size_t errlen)
{
	enum fail_kind	 kind = FAIL_NONE;
	size_t		 i, depth = 0;
	char		 words[256];

	for (i = 0; i < n; i++)
		if (cands[i].c_fail != FAIL_SHADOWED &&
		    cands[i].c_depth > depth)
			depth = cands[i].c_depth;
	for (i = 0; i < n; i++)
		if (cands[i].c_fail != FAIL_SHADOWED &&
		    cands[i].c_depth == depth && cands[i].c_fail > kind)
			kind = cands[i].c_fail;

	switch (kind) {
	case FAIL_ARG:
		for (i = 0; i < n; i++)
			if (cands[i].c_fail == kind &&
			    cands[i].c_depth == depth)
				break;
		errf(err, errlen, "%s", cands[i].c_argerr);
		break;
	case FAIL_MISSING:
		join_words(0, argc, argv, words, sizeof(words));
		for (i = 0; i < n; i++)
			if (cands[i].c_fail == kind &&
			    cands[i].c_depth == depth &&
			    cands[i].c_tok[depth].t_type == TOK_WORD)
				break;
		errf(err, errlen, "%s after \"%s\"; usage:", i < n ?
		    "incomplete command" : "missing argument", words);
		list_patterns(cands, n, kind, depth, err, errlen);
		break;
	case FAIL_EXTRA:
		join_words((int)depth, argc, argv, words, sizeof(words));
		errf(err, errlen, "unexpected argument \"%s\"; usage:", words);
		list_patterns(cands, n, kind, depth, err, errlen);
		break;
	default:
		join_words(0, (int)depth + 1 <= argc ? (int)depth + 1 : argc,
		    argv, words, sizeof(words));
		errf(err, errlen, "unknown command \"%s\"; valid commands%s:",
		    words, depth > 0 ? " here" : "");
		list_patterns(cands, n, FAIL_WORD, depth, err, errlen);
		break;
	}
}

int
parse_command(int argc, char *const argv[], struct parse_result *res,
    char *err, size_t errlen)
{
	struct cand	 cands[sizeof(parse_cmds) / sizeof(parse_cmds[0])];
	struct cand	*c, *match = NULL;
	struct tok	*t;
	size_t		 n, i, j, wlen, nmatch;
	int		 k, exact_here, exact[sizeof(cands) / sizeof(cands[0])];

	if (errlen > 0)
		err[0] = '\0';
	memset(cands, 0, sizeof(cands));
	for (n = 0; parse_cmds[n].cc_pattern != NULL; n++) {
		c = &cands[n];
		c->c_cmd = &parse_cmds[n];
		c->c_res.pr_cmd = c->c_cmd;
		if (tokenize(c->c_cmd->cc_pattern, c->c_tok, &c->c_ntok) ==
		    -1) {
			errf(err, errlen, "bad pattern \"%s\"",
			    c->c_cmd->cc_pattern);
			return -1;
		}
		for (j = 0; j < c->c_ntok; j++) {
			if (c->c_tok[j].t_type != TOK_WORD)
				continue;
			errf(c->c_res.pr_wire, sizeof(c->c_res.pr_wire),
			    "%s%s", c->c_res.pr_wire[0] != '\0' ? " " : "",
			    c->c_tok[j].t_text);
		}
	}

	/* Walk the words; every candidate still alive advances together. */
	for (k = 0; k < argc; k++) {
		wlen = strlen(argv[k]);
		exact_here = 0;
		for (i = 0; i < n; i++) {
			c = &cands[i];
			exact[i] = 0;
			if (c->c_fail != FAIL_NONE)
				continue;
			if ((size_t)k >= c->c_ntok) {
				c->c_fail = FAIL_EXTRA;
				c->c_depth = (size_t)k;
				continue;
			}
			t = &c->c_tok[k];
			if (t->t_type == TOK_WORD) {
				if (strcmp(argv[k], t->t_text) == 0)
					exact[i] = exact_here = 1;
				else if (wlen == 0 ||
				    strncmp(argv[k], t->t_text, wlen) != 0) {
					c->c_fail = FAIL_WORD;
					c->c_depth = (size_t)k;
				}
			} else if (cand_arg(c, t, argv[k]) == -1) {
				c->c_fail = FAIL_ARG;
				c->c_depth = (size_t)k;
			}
		}
		/* "show client" is not an abbreviation of "show clients". */
		if (!exact_here)
			continue;
		for (i = 0; i < n; i++) {
			if (cands[i].c_fail == FAIL_NONE && !exact[i]) {
				cands[i].c_fail = FAIL_SHADOWED;
				cands[i].c_depth = (size_t)k;
			}
		}
	}

	nmatch = 0;
	for (i = 0; i < n; i++) {
		c = &cands[i];
		if (c->c_fail != FAIL_NONE)
			continue;
		for (j = (size_t)argc; j < c->c_ntok; j++) {
			if (c->c_tok[j].t_type != TOK_OPTIONAL) {
				c->c_fail = FAIL_MISSING;
				c->c_depth = (size_t)argc;
				break;
			}
		}
		if (c->c_fail == FAIL_NONE) {
			match = c;
			nmatch++;
		}
	}

	if (nmatch == 1) {
		*res = match->c_res;
		return 0;
	}
	if (nmatch > 1) {
		char	 words[256];

		join_words(0, argc, argv, words, sizeof(words));
		errf(err, errlen, "ambiguous command \"%s\"; it could be:",
		    words);
		for (i = 0; i < n; i++)
			if (cands[i].c_fail == FAIL_NONE)
				errf(err, errlen, "\n\t%s",
				    cands[i].c_cmd->cc_pattern);
		return -1;
	}
	report_failure(cands, n, argc, argv, err, errlen);
	return -1;
}

/* Lowercase hex of at most max digits, at least min; length or -1. */
static int
hex_run(const char *s, size_t min, size_t max)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (i == max || !isxdigit((unsigned char)s[i]))
			return -1;
	return i < min ? -1 : (int)i;
}

static int
key_text(const char *prefix, const char *hex, size_t nhex, char *out,
    size_t outlen)
{
	size_t	 plen = strlen(prefix), i;

	if (plen + nhex + 1 > outlen)
		return -1;
	memcpy(out, prefix, plen);
	for (i = 0; i < nhex; i++)
		out[plen + i] = (char)tolower((unsigned char)hex[i]);
	out[plen + nhex] = '\0';
	return 0;
}

int
parse_key(const char *in, char *out, size_t outlen)
{
	size_t	 plen = strlen(NODEKEY_PREFIX);

	if (strncmp(in, NODEKEY_PREFIX, plen) == 0)
		in += plen;
	if (hex_run(in, KEY_HEX_LEN, KEY_HEX_LEN) == -1)
		return -1;
	return key_text(NODEKEY_PREFIX, in, KEY_HEX_LEN, out, outlen);
}

int
parse_key_prefix(const char *in, char *out, size_t outlen)
{
	size_t	 plen = strlen(NODEKEY_PREFIX);
	int	 n;

	/* "nodekey:" alone is a valid prefix of every key; "" is not. */
	if (strncmp(in, NODEKEY_PREFIX, plen) == 0) {
		in += plen;
		n = hex_run(in, 0, KEY_HEX_LEN);
	} else
		n = hex_run(in, 1, KEY_HEX_LEN);
	if (n == -1)
		return -1;
	return key_text(NODEKEY_PREFIX, in, (size_t)n, out, outlen);
}
