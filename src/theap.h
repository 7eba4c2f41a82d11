/* SPDX-License-Identifier: ISC */
/* theap.h: a min-heap of deadlines, the worker's one timer for many. */
#ifndef DERPD_THEAP_H
#define DERPD_THEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A deadline embedded in its owner (16 bytes; a libevent timer event is
 * 128 plus its allocation). tn_idx is its place in the heap plus one, 0
 * when it is not in one. Zero-initialised means not armed.
 */
struct theap_node {
	uint64_t	 tn_due;
	uint32_t	 tn_idx;
};

struct theap {
	struct theap_node	**th_v;
	uint32_t		 th_n, th_cap;
};

void	theap_init(struct theap *);
void	theap_free(struct theap *);
/* Arm n for due (or move it there); -1 only when the heap cannot grow. */
int	theap_set(struct theap *, struct theap_node *n, uint64_t due);
/* Disarm n; a no-op when it is not armed. */
void	theap_del(struct theap *, struct theap_node *n);
/* The earliest node, NULL when empty. */
struct theap_node *theap_top(const struct theap *);
static inline bool
theap_armed(const struct theap_node *n)
{
	return n->tn_idx != 0;
}
uint32_t theap_count(const struct theap *);

#ifdef __cplusplus
}
#endif
#endif
