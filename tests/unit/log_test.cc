// SPDX-License-Identifier: ISC
// log_test.cc: the rate limit for lines that peers can cause.
#include <gtest/gtest.h>

#include "log.h"

namespace {

TEST(LogRate, BurstThenRate)
{
	struct log_rate lr = {};
	uint64_t held = 99;
	uint64_t t = 1000;

	// A burst of 5 at once, then nothing until tokens come back.
	for (int i = 0; i < 5; i++) {
		ASSERT_EQ(1, log_rate_allow(&lr, t, 10, 5, &held)) << i;
		EXPECT_EQ(0u, held);
	}
	for (int i = 0; i < 7; i++)
		EXPECT_EQ(0, log_rate_allow(&lr, t, 10, 5, &held));
	// 10 per second: one token after 100 ms, and the next line says
	// how many were held back before it.
	EXPECT_EQ(0, log_rate_allow(&lr, t + 50, 10, 5, &held));
	ASSERT_EQ(1, log_rate_allow(&lr, t + 100, 10, 5, &held));
	EXPECT_EQ(8u, held);
	EXPECT_EQ(0, log_rate_allow(&lr, t + 100, 10, 5, &held));
	// A long quiet time refills to the burst, not beyond.
	t += 100000;
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(1, log_rate_allow(&lr, t, 10, 5, &held)) << i;
	EXPECT_EQ(0, log_rate_allow(&lr, t, 10, 5, &held));
}

TEST(LogRate, ClockGoingBackIsHarmless)
{
	struct log_rate lr = {};
	uint64_t held;

	ASSERT_EQ(1, log_rate_allow(&lr, 5000, 1, 1, &held));
	EXPECT_EQ(0, log_rate_allow(&lr, 4000, 1, 1, &held));
	EXPECT_EQ(0, log_rate_allow(&lr, 4500, 1, 1, &held));
	EXPECT_EQ(1, log_rate_allow(&lr, 5600, 1, 1, &held));
	EXPECT_EQ(2u, held);
}

}  // namespace
