/* SPDX-License-Identifier: ISC */
/* tbucket.c: token bucket, Go x/time/rate semantics (see tbucket.h). */
#include <math.h>
#include <time.h>

#include "tbucket.h"

void
tbucket_init(struct tbucket *tb, double rate, double burst, uint64_t now_ns)
{
	tb->tb_rate = rate;
	tb->tb_burst = burst;
	tb->tb_tokens = burst;
	tb->tb_last_ns = now_ns;
}

/* Refill for the time since tb_last_ns (a clock going back adds nothing). */
static void
tbucket_advance(struct tbucket *tb, uint64_t now_ns)
{
	double	 add;

	if (now_ns <= tb->tb_last_ns)
		return;
	add = (double)(now_ns - tb->tb_last_ns) / 1e9 * tb->tb_rate;
	tb->tb_tokens = tb->tb_tokens + add > tb->tb_burst ? tb->tb_burst :
	    tb->tb_tokens + add;
	tb->tb_last_ns = now_ns;
}

bool
tbucket_allow(struct tbucket *tb, double n, uint64_t now_ns)
{
	if (isinf(tb->tb_rate))
		return true;
	tbucket_advance(tb, now_ns);
	if (tb->tb_tokens < n)
		return false;
	tb->tb_tokens -= n;
	return true;
}

uint64_t
tbucket_reserve(struct tbucket *tb, double n, uint64_t now_ns)
{
	double	 wait;

	if (isinf(tb->tb_rate))
		return 0;
	tbucket_advance(tb, now_ns);
	tb->tb_tokens -= n;
	if (tb->tb_tokens >= 0)
		return 0;
	if (tb->tb_rate <= 0)
		return UINT64_MAX;
	wait = ceil(-tb->tb_tokens / tb->tb_rate * 1e9);
	return wait >= 1.8e19 ? UINT64_MAX : (uint64_t)wait;
}

uint64_t
tbucket_now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
