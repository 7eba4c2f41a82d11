// SPDX-License-Identifier: ISC
// ratelim_test.cc: the token bucket (Go x/time/rate semantics) and the
// -rate-config parser (Go encoding/json into derper's RateConfig).
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "ratelim.h"
#include "tbucket.h"

static const uint64_t SEC = 1000000000ULL;

TEST(TBucket, StartsFullThenRefillsAtRate)
{
	struct tbucket tb;

	tbucket_init(&tb, 2, 3, 10 * SEC);
	EXPECT_TRUE(tbucket_allow(&tb, 1, 10 * SEC));
	EXPECT_TRUE(tbucket_allow(&tb, 1, 10 * SEC));
	EXPECT_TRUE(tbucket_allow(&tb, 1, 10 * SEC));
	EXPECT_FALSE(tbucket_allow(&tb, 1, 10 * SEC));
	// Half a second at 2/s is one token.
	EXPECT_TRUE(tbucket_allow(&tb, 1, 10 * SEC + SEC / 2));
	EXPECT_FALSE(tbucket_allow(&tb, 1, 10 * SEC + SEC / 2));
	// A long pause refills to the burst, not beyond.
	for (int i = 0; i < 3; i++)
		EXPECT_TRUE(tbucket_allow(&tb, 1, 100 * SEC));
	EXPECT_FALSE(tbucket_allow(&tb, 1, 100 * SEC));
	// A clock that goes back adds nothing.
	EXPECT_FALSE(tbucket_allow(&tb, 1, 50 * SEC));
}

TEST(TBucket, InfiniteRateAlwaysAllowsZeroBurstNever)
{
	struct tbucket tb;

	tbucket_init(&tb, INFINITY, 0, 0);
	for (int i = 0; i < 1000; i++)
		ASSERT_TRUE(tbucket_allow(&tb, 1, 0));
	EXPECT_EQ(tbucket_reserve(&tb, 1e9, 0), 0u);
	tbucket_init(&tb, 10, 0, 0);
	EXPECT_FALSE(tbucket_allow(&tb, 1, 0));
	EXPECT_FALSE(tbucket_allow(&tb, 1, 100 * SEC));
	// derper's flag default: a huge burst with a finite rate.
	tbucket_init(&tb, 1, 9223372036854775807.0, 0);
	for (int i = 0; i < 1000; i++)
		ASSERT_TRUE(tbucket_allow(&tb, 1, 0));
}

TEST(TBucket, ReserveGoesIntoDebtAndSaysHowLong)
{
	struct tbucket tb;

	tbucket_init(&tb, 1000, 1500, 0);
	EXPECT_EQ(tbucket_reserve(&tb, 1000, 0), 0u);	// 500 left
	// 1000 more: 500 in debt, half a second at 1000/s.
	EXPECT_EQ(tbucket_reserve(&tb, 1000, 0), SEC / 2);
	// The debt is paid by then; the next reservation waits its own share.
	EXPECT_EQ(tbucket_reserve(&tb, 1000, SEC / 2), SEC);
	// Allow refuses while in debt and does not take anything.
	EXPECT_FALSE(tbucket_allow(&tb, 1, SEC / 2));
	EXPECT_TRUE(tbucket_allow(&tb, 1, 2 * SEC));
}

static int
Parse(const std::string &s, struct rate_conf *rc, std::string *why = nullptr)
{
	char err[256] = "";
	int rv = rateconf_parse(s.data(), s.size(), rc, err, sizeof(err));
	if (why != nullptr)
		*why = err;
	return rv;
}

TEST(RateConf, DerperFieldsAnyCaseOthersIgnored)
{
	struct rate_conf rc;

	ASSERT_EQ(Parse("{\"PerClientRateLimitBytesPerSec\": 1000000, "
	    "\"PerClientRateBurstBytes\": 2000000}", &rc), 0);
	EXPECT_EQ(rc.rc_bytes_per_sec, 1000000u);
	EXPECT_EQ(rc.rc_burst, 2000000u);
	ASSERT_EQ(Parse("{\"perclientratelimitbytespersec\": 5, \"x\": [1], "
	    "\"PERCLIENTRATEBURSTBYTES\": null}\n", &rc), 0);
	EXPECT_EQ(rc.rc_bytes_per_sec, 5u);
	EXPECT_EQ(rc.rc_burst, 0u);
	// The last of a repeated key wins, as in Go.
	ASSERT_EQ(Parse("{\"PerClientRateBurstBytes\": 1, "
	    "\"PerClientRateBurstBytes\": 7}", &rc), 0);
	EXPECT_EQ(rc.rc_burst, 7u);
	// null and {} are the empty config: no limit.
	ASSERT_EQ(Parse("null", &rc), 0);
	EXPECT_EQ(rc.rc_bytes_per_sec, 0u);
	ASSERT_EQ(Parse(" {} ", &rc), 0);
	EXPECT_EQ(rc.rc_bytes_per_sec, 0u);
}

TEST(RateConf, BadFilesRefusedWithAReasonAndNothingChanged)
{
	struct rate_conf rc = { 42, 43 };
	std::string why;

	for (const char *bad : { "", "{", "[]", "1", "\"x\"", "{} x",
	    "{\"PerClientRateLimitBytesPerSec\": -1}",
	    "{\"PerClientRateLimitBytesPerSec\": 1.5}",
	    "{\"PerClientRateLimitBytesPerSec\": \"10\"}",
	    "{\"PerClientRateBurstBytes\": true}",
	    "{\"PerClientRateBurstBytes\": 1e30}" }) {
		EXPECT_EQ(Parse(bad, &rc, &why), -1) << bad;
		EXPECT_FALSE(why.empty()) << bad;
		EXPECT_EQ(rc.rc_bytes_per_sec, 42u) << bad;
	}
	EXPECT_EQ(Parse("{\"PerClientRateBurstBytes\": true}", &rc, &why), -1);
	EXPECT_NE(why.find("PerClientRateBurstBytes"), std::string::npos) << why;
}

// derper's UpdateRateLimits: no rate, no limit; else a burst of at least
// one full SendPacket frame.
TEST(RateConf, NormalizeAsDerperApplies)
{
	struct rate_conf rc = { 0, 5000000 };

	rateconf_normalize(&rc);
	EXPECT_EQ(rc.rc_burst, 0u);
	rc = { 100, 10 };
	rateconf_normalize(&rc);
	EXPECT_EQ(rc.rc_burst, (uint64_t)RATE_MIN_BURST);
	EXPECT_EQ(RATE_MIN_BURST, 65568);
	rc = { 100, 1000000 };
	rateconf_normalize(&rc);
	EXPECT_EQ(rc.rc_burst, 1000000u);
}
