/* SPDX-License-Identifier: ISC */
/* tmpdir.h: a private directory for one unit test, removed with its content. */
#ifndef DERPD_TEST_TMPDIR_H
#define DERPD_TEST_TMPDIR_H

#include <ftw.h>
#include <stdlib.h>
#include <string>

#include <gtest/gtest.h>

class TmpDir {
public:
	/* Made under /tmp as <prefix>XXXXXX; path() is empty on failure. */
	explicit TmpDir(const char *prefix)
	{
		std::string t = std::string("/tmp/") + prefix + "XXXXXX";
		if (mkdtemp(&t[0]) != nullptr)
			dir_ = t;
		else
			ADD_FAILURE() << "mkdtemp " << t << " failed";
	}

	~TmpDir()
	{
		if (!dir_.empty())
			nftw(dir_.c_str(), Remove, 16, FTW_DEPTH | FTW_PHYS);
	}

	TmpDir(const TmpDir &) = delete;
	TmpDir &operator=(const TmpDir &) = delete;

	const std::string &path() const { return dir_; }
	std::string Path(const std::string &name) const
	{
		return dir_ + "/" + name;
	}

private:
	static int Remove(const char *p, const struct stat *, int,
	    struct FTW *)
	{
		return remove(p);
	}

	std::string dir_;
};

#endif
