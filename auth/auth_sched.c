/* SPDX-License-Identifier: ISC */
/*
 * auth_sched.c: fair scheduling of admission checks (engine thread).
 * Checks that wait for a backend slot are grouped by source address (an
 * IPv4 address, an IPv6 /64: auth_src_key) and served round robin across
 * groups, so one source opening connections with fresh keys cannot keep
 * the others waiting; the engine caps what one group may have pending.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth_int.h"
#include "util.h"

#define SCHED_TAB	1024	/* group buckets (a power of two) */

struct auth_sched {
	struct auth_src		*sc_tab[SCHED_TAB];	/* groups by key */
	uint8_t			 sc_seed[crypto_shorthash_KEYBYTES];
	struct auth_src		*sc_ring_head, *sc_ring_tail;	/* waiting */
	size_t			 sc_ngroups, sc_nqueued;
};

struct auth_sched *
auth_sched_new(void)
{
	struct auth_sched *sc;

	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	util_hash_seed(sc->sc_seed);
	return sc;
}

void
auth_sched_free(struct auth_sched *sc)
{
	if (sc == NULL)
		return;
	/* Their flights are freed by the engine with the cache. */
	for (size_t i = 0; i < SCHED_TAB; i++)
		while (sc->sc_tab[i] != NULL) {
			struct auth_src *s = sc->sc_tab[i];
			sc->sc_tab[i] = s->s_hnext;
			free(s);
		}
	free(sc);
}

/* Keyed (SipHash), so that clients cannot pick addresses to collide. */
static size_t
sched_hash(const struct auth_sched *sc, const uint8_t *k)
{
	uint8_t		 out[crypto_shorthash_BYTES];
	uint64_t	 h;

	crypto_shorthash(out, k, AUTH_SRC_KEY_LEN, sc->sc_seed);
	memcpy(&h, out, sizeof(h));
	return (size_t)h & (SCHED_TAB - 1);
}

struct auth_src *
auth_sched_group(struct auth_sched *sc, const uint8_t *key)
{
	struct auth_src	**head = &sc->sc_tab[sched_hash(sc, key)], *s;

	for (s = *head; s != NULL; s = s->s_hnext)
		if (memcmp(s->s_key, key, AUTH_SRC_KEY_LEN) == 0)
			return s;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	memcpy(s->s_key, key, AUTH_SRC_KEY_LEN);
	s->s_hnext = *head;
	*head = s;
	sc->sc_ngroups++;
	return s;
}

void
auth_sched_release(struct auth_sched *sc, struct auth_src *s)
{
	struct auth_src **pp;

	if (s == NULL || s->s_pending > 0 || s->s_inring)
		return;
	for (pp = &sc->sc_tab[sched_hash(sc, s->s_key)]; *pp != s;
	    pp = &(*pp)->s_hnext)
		;
	*pp = s->s_hnext;
	sc->sc_ngroups--;
	free(s);
}

/* Append group s to the round robin. */
static void
ring_append(struct auth_sched *sc, struct auth_src *s)
{
	s->s_rnext = NULL;
	if (sc->sc_ring_tail != NULL)
		sc->sc_ring_tail->s_rnext = s;
	else
		sc->sc_ring_head = s;
	sc->sc_ring_tail = s;
}

void
auth_sched_enqueue(struct auth_sched *sc, struct auth_flight *f)
{
	struct auth_src *s = f->f_grp;

	f->f_queued = 1;
	f->f_next = NULL;
	if (s->s_qtail != NULL)
		s->s_qtail->f_next = f;
	else
		s->s_qhead = f;
	s->s_qtail = f;
	sc->sc_nqueued++;
	if (!s->s_inring) {
		s->s_inring = 1;
		ring_append(sc, s);
	}
}

struct auth_flight *
auth_sched_dequeue(struct auth_sched *sc)
{
	struct auth_src		*s = sc->sc_ring_head;
	struct auth_flight	*f;

	if (s == NULL)
		return NULL;
	sc->sc_ring_head = s->s_rnext;
	if (sc->sc_ring_head == NULL)
		sc->sc_ring_tail = NULL;
	f = s->s_qhead;
	s->s_qhead = f->f_next;
	if (s->s_qhead == NULL) {
		s->s_qtail = NULL;
		s->s_inring = 0;
		s->s_rnext = NULL;
	} else
		ring_append(sc, s);	/* more: to the back of the line */
	f->f_next = NULL;
	f->f_queued = 0;
	sc->sc_nqueued--;
	return f;
}

bool
auth_sched_waiting(const struct auth_sched *sc)
{
	return sc->sc_ring_head != NULL;
}

size_t
auth_sched_queued(const struct auth_sched *sc)
{
	return sc->sc_nqueued;
}

size_t
auth_sched_groups(const struct auth_sched *sc)
{
	return sc->sc_ngroups;
}
