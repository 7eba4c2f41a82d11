// SPDX-License-Identifier: ISC
// procstat_test.cc: the /proc parsers behind process_*, and the counters
// behind derper's histogram, RTT buckets and average queue time.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "procstat.h"
#include "stats.h"

namespace {

TEST(Procstat, StatFields)
{
	// A command name with blanks and parentheses: the last ')' counts.
	std::string s = "27324 (a) b (c)) R 27320 27320 13175 0 -1 4194304 "
	    "101 0 0 0 250 130 0 0 20 0 1 0 1293727 3133440 410 "
	    "18446744073709551615 94799387869184 0 0\n";
	struct procstat_stat ps;

	ASSERT_EQ(0, procstat_parse_stat(s.data(), s.size(), &ps));
	EXPECT_EQ(250u, ps.ps_utime);
	EXPECT_EQ(130u, ps.ps_stime);
	EXPECT_EQ(1293727u, ps.ps_starttime);
	EXPECT_EQ(3133440u, ps.ps_vsize);
	EXPECT_EQ(410u, ps.ps_rss);
}

TEST(Procstat, StatMalformed)
{
	struct procstat_stat ps;

	for (const char *s : { "", "27324 (cat R 1 2", "1 (x) R 1 2 3",
	    "1 (x) R 1 1 1 0 -1 4 1 0 0 0 x 1 0 0 20 0 1 0 1 2 3" })
		EXPECT_EQ(-1, procstat_parse_stat(s, strlen(s), &ps)) << s;
}

TEST(Procstat, Btime)
{
	std::string s = "cpu  1 2 3\nintr 5 6 7\nbtime 1796213389\n"
	    "processes 9\n";
	int64_t bt = 0;

	ASSERT_EQ(0, procstat_parse_btime(s.data(), s.size(), &bt));
	EXPECT_EQ(1796213389, bt);
	s = "cpu 1\nbtimex 5\n";
	EXPECT_EQ(-1, procstat_parse_btime(s.data(), s.size(), &bt));
}

TEST(Procstat, NetDevSumsInterfaces)
{
	std::string s =
	    "Inter-|   Receive                                                |"
	    "  Transmit\n"
	    " face |bytes    packets errs drop fifo frame compressed multicast|"
	    "bytes    packets errs drop fifo colls carrier compressed\n"
	    "    lo: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
	    "  eth0:30 3 0 0 0 0 0 0 40 4 0 0 0 0 0 0\n";
	uint64_t rx = 0, tx = 0;

	ASSERT_EQ(0, procstat_parse_netdev(s.data(), s.size(), &rx, &tx));
	EXPECT_EQ(1030u, rx);
	EXPECT_EQ(2040u, tx);
	s = "h1\nh2\n  lo 1 2 3\n";
	EXPECT_EQ(-1, procstat_parse_netdev(s.data(), s.size(), &rx, &tx));
}

TEST(Procstat, ReadsThisProcess)
{
	struct procstat p;

	procstat_read(&p);
	EXPECT_GE(p.pr_cpu_seconds, 0);
	EXPECT_GT(p.pr_resident_bytes, 0);
	EXPECT_GE(p.pr_virtual_bytes, p.pr_resident_bytes);
	EXPECT_GE(p.pr_open_fds, 3);
	EXPECT_GE(p.pr_max_fds, p.pr_open_fds);
	EXPECT_GT(p.pr_boot_time, 0);
	EXPECT_GE(p.pr_start_time, (double)p.pr_boot_time);
}

TEST(Stats, HistogramBucketsAreNotCumulativeUntilRendered)
{
	struct stats st;
	size_t n;
	const uint64_t *b = stats_hist_bounds(HIST_BUFFERED_WRITE_FRAMES, &n);

	memset(&st, 0, sizeof(st));
	ASSERT_EQ(16u, n);
	EXPECT_EQ(100u, b[n - 1]);
	stats_observe(&st, HIST_BUFFERED_WRITE_FRAMES, 0);
	stats_observe(&st, HIST_BUFFERED_WRITE_FRAMES, 11);	// le 15
	stats_observe(&st, HIST_BUFFERED_WRITE_FRAMES, 15);
	stats_observe(&st, HIST_BUFFERED_WRITE_FRAMES, 101);	// +Inf
	EXPECT_EQ(1u, st.st_hist[HIST_BUFFERED_WRITE_FRAMES][0]);
	EXPECT_EQ(2u, st.st_hist[HIST_BUFFERED_WRITE_FRAMES][11]);
	EXPECT_EQ(1u, st.st_hist[HIST_BUFFERED_WRITE_FRAMES][16]);
	EXPECT_EQ(4u, st.st_hist_count[HIST_BUFFERED_WRITE_FRAMES]);
	EXPECT_EQ(127u, st.st_hist_sum[HIST_BUFFERED_WRITE_FRAMES]);
}

TEST(Stats, TcpRttBucketsAsDerper)
{
	struct stats st;

	memset(&st, 0, sizeof(st));
	stats_tcp_rtt(&st, 50);		// 50 us
	stats_tcp_rtt(&st, 10000);	// exactly 10 ms: <= 10ms
	stats_tcp_rtt(&st, 10001);
	stats_tcp_rtt(&st, 499999);
	stats_tcp_rtt(&st, 500001);
	EXPECT_EQ(2u, st.st_tcp_rtt[RTT_10MS]);
	EXPECT_EQ(1u, st.st_tcp_rtt[RTT_20MS]);
	EXPECT_EQ(1u, st.st_tcp_rtt[RTT_500MS]);
	EXPECT_EQ(1u, st.st_tcp_rtt[RTT_INF]);
	EXPECT_STREQ("non-tcp", stats_rtt_name(RTT_NON_TCP));
	EXPECT_STREQ("10ms", stats_rtt_name(RTT_10MS));
}

TEST(Stats, QueueAverageIsDerpersMovingAverageMeanOfWorkers)
{
	struct stats a, b, c, sum;
	const struct stats *in[] = { &a, &b, &c };

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	stats_queue_time(&a, 10);	// 0.1 * 10
	EXPECT_DOUBLE_EQ(1.0, stats_queue_avg(&a));
	stats_queue_time(&a, 10);	// 0.1 * 10 + 0.9 * 1
	EXPECT_DOUBLE_EQ(1.9, stats_queue_avg(&a));
	stats_queue_time(&b, 1);
	// c has no sample and does not pull the mean down.
	stats_sum(in, 3, &sum);
	EXPECT_DOUBLE_EQ((1.9 + 0.1) / 2, stats_queue_avg(&sum));
	EXPECT_EQ(3u, sum.st_queue_samples);
}

}  // namespace
