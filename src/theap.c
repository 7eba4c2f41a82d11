/* SPDX-License-Identifier: ISC */
/* theap.c: a binary min-heap of deadlines, nodes embedded in owners. */
#include <stdlib.h>

#include "theap.h"

#define THEAP_MIN_CAP	64

void
theap_init(struct theap *h)
{
	h->th_v = NULL;
	h->th_n = h->th_cap = 0;
}

/* The array only: nodes still in it are their owners' to forget. */
void
theap_free(struct theap *h)
{
	free(h->th_v);
	theap_init(h);
}

uint32_t
theap_count(const struct theap *h)
{
	return h->th_n;
}

static void
theap_place(struct theap *h, uint32_t i, struct theap_node *n)
{
	h->th_v[i] = n;
	n->tn_idx = i + 1;
}

static void
theap_up(struct theap *h, uint32_t i)
{
	struct theap_node *n = h->th_v[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (h->th_v[p]->tn_due <= n->tn_due)
			break;
		theap_place(h, i, h->th_v[p]);
		i = p;
	}
	theap_place(h, i, n);
}

static void
theap_down(struct theap *h, uint32_t i)
{
	struct theap_node *n = h->th_v[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m;
		if (l >= h->th_n)
			break;
		m = l;
		if (l + 1 < h->th_n && h->th_v[l + 1]->tn_due < h->th_v[l]->tn_due)
			m = l + 1;
		if (n->tn_due <= h->th_v[m]->tn_due)
			break;
		theap_place(h, i, h->th_v[m]);
		i = m;
	}
	theap_place(h, i, n);
}

int
theap_set(struct theap *h, struct theap_node *n, uint64_t due)
{
	if (n->tn_idx != 0) {
		uint32_t i = n->tn_idx - 1;
		uint64_t was = n->tn_due;

		n->tn_due = due;
		if (due < was)
			theap_up(h, i);
		else if (due > was)
			theap_down(h, i);
		return 0;
	}
	if (h->th_n == h->th_cap) {
		uint32_t cap = h->th_cap ? h->th_cap * 2 : THEAP_MIN_CAP;
		struct theap_node **v;

		if (cap < h->th_cap ||
		    (v = realloc(h->th_v, (size_t)cap * sizeof(*v))) == NULL)
			return -1;
		h->th_v = v;
		h->th_cap = cap;
	}
	n->tn_due = due;
	theap_place(h, h->th_n++, n);
	theap_up(h, h->th_n - 1);
	return 0;
}

/* Give back half the array when a quarter is used (after a mass leave). */
static void
theap_shrink(struct theap *h)
{
	struct theap_node **v;
	uint32_t cap = h->th_cap / 2;

	if (h->th_cap <= THEAP_MIN_CAP || h->th_n > h->th_cap / 4)
		return;
	if ((v = realloc(h->th_v, (size_t)cap * sizeof(*v))) == NULL)
		return;
	h->th_v = v;
	h->th_cap = cap;
}

void
theap_del(struct theap *h, struct theap_node *n)
{
	uint32_t i;
	struct theap_node *last;

	if (n->tn_idx == 0)
		return;
	i = n->tn_idx - 1;
	n->tn_idx = 0;
	last = h->th_v[--h->th_n];
	if (last != n) {
		theap_place(h, i, last);
		if (i > 0 && h->th_v[(i - 1) / 2]->tn_due > last->tn_due)
			theap_up(h, i);
		else
			theap_down(h, i);
	}
	theap_shrink(h);
}

struct theap_node *
theap_top(const struct theap *h)
{
	return h->th_n > 0 ? h->th_v[0] : NULL;
}
