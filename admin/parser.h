/* SPDX-License-Identifier: ISC */
/* parser.h: derpctl's command grammar, a table of pattern strings. */
#ifndef DERPCTL_PARSER_H
#define DERPCTL_PARSER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What derpctl does with the reply; one per table entry. */
enum ctl_action {
	CTL_SHOW_CLIENTS,
	CTL_SHOW_CLIENT,
	CTL_SHOW_REJECTS,
	CTL_SHOW_STATS,
	CTL_SHOW_ADMISSION,
	CTL_SHOW_MESH,
	CTL_SHOW_CERTS,
	CTL_KICK,
	CTL_RELOAD,
	CTL_LOG,
	CTL_MONITOR
};

/*
 * One command. The pattern is a sequence of words separated by single
 * spaces: a literal keyword, "<name>" (a required argument) or "[name]"
 * (an optional one, last only). The literal words joined by one space
 * are the "cmd" sent to derpd; each argument becomes args.<name>.
 */
struct ctl_cmd {
	const char	*cc_pattern;
	enum ctl_action	 cc_action;
};

#define PARSE_MAXARGS	4
#define PARSE_WIRE_MAX	64
#define PARSE_NAME_MAX	16
#define PARSE_VALUE_MAX	128

struct parse_arg {
	char		 pa_name[PARSE_NAME_MAX];
	char		 pa_value[PARSE_VALUE_MAX];	/* normalised */
};

struct parse_result {
	const struct ctl_cmd	*pr_cmd;
	char			 pr_wire[PARSE_WIRE_MAX];	/* the cmd */
	size_t			 pr_nargs;
	struct parse_arg	 pr_args[PARSE_MAXARGS];
};

/* The command table, terminated by an entry with a NULL pattern. */
extern const struct ctl_cmd parse_cmds[];

/*
 * Match argv (the words after the options) against the table. Keywords
 * may be abbreviated to any prefix that leaves one command; a keyword
 * typed in full wins over longer keywords it is a prefix of. Returns 0
 * with res filled, or -1 with a message (possibly several lines) in err.
 */
int	parse_command(int argc, char *const argv[], struct parse_result *res,
	    char *err, size_t errlen);

/*
 * Normalise a node key, "nodekey:<64 hex>" or bare 64 hex, either case,
 * to "nodekey:<64 lowercase hex>" in out (at least 73 bytes). 0 or -1.
 */
int	parse_key(const char *in, char *out, size_t outlen);

/*
 * Normalise a key prefix, "nodekey:<0-64 hex>" or bare 1-64 hex, to
 * "nodekey:<lowercase hex>" in out (at least 73 bytes). 0 or -1.
 */
int	parse_key_prefix(const char *in, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
