/* SPDX-License-Identifier: ISC */
/* output.h: how derpctl shows a reply: human text or the daemon's JSON. */
#ifndef DERPCTL_OUTPUT_H
#define DERPCTL_OUTPUT_H

#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* One line from derpd, parsed; everything is borrowed from the caller. */
struct reply {
	const struct cJSON	*r_msg;		/* the whole object */
	const struct cJSON	*r_body;	/* "result" or event "data" */
	const char		*r_line;	/* as received, without \n */
	size_t			 r_linelen;
	time_t			 r_time;	/* when it arrived */
};

/*
 * One method per kind of reply, as bgpctl's struct output. Each writes
 * to stdout and never fails: missing or mistyped members show as "-".
 */
struct output {
	void	(*clients)(const struct reply *);	/* show clients */
	void	(*client)(const struct reply *);	/* show client */
	void	(*rejects)(const struct reply *);
	void	(*stats)(const struct reply *);
	void	(*admission)(const struct reply *);
	void	(*mesh)(const struct reply *);		/* show mesh */
	void	(*certs)(const struct reply *);		/* show certs */
	void	(*kick)(const struct reply *);
	void	(*reload)(const struct reply *);
	void	(*log)(const struct reply *);
	void	(*monitor)(const struct reply *);	/* the ok reply */
	void	(*event)(const struct reply *);		/* each event */
};

extern const struct output text_output;
extern const struct output json_output;

#ifdef __cplusplus
}
#endif
#endif
