// SPDX-License-Identifier: ISC
// keys_test.cc: key generation, the derper key file and the mesh key.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <cjson/cJSON.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include "keys.h"
#include "tmpdir.h"

namespace {

const char kHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

// RFC 7748 6.1: Alice's X25519 private and public keys.
const char kAlicePriv[] =
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const char kAlicePub[] =
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

void
FromHex(const char *hex, uint8_t out[32])
{
	size_t bin_len = 0;
	ASSERT_EQ(sodium_hex2bin(out, 32, hex, strlen(hex), nullptr, &bin_len,
	    nullptr), 0);
	ASSERT_EQ(bin_len, 32u);
}

std::string
Upper(std::string s)
{
	for (char &c : s)
		c = (char)toupper((unsigned char)c);
	return s;
}

class Keys : public ::testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_GE(sodium_init(), 0);
		dir_ = tmp_.path();
		ASSERT_FALSE(dir_.empty());
	}

	std::string Path(const std::string &name) const
	{
		return tmp_.Path(name);
	}

	TmpDir tmp_{"derpd-keys-"};

	void Write(const std::string &path, const std::string &text,
	    mode_t mode)
	{
		int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(write(fd, text.data(), text.size()),
		    (ssize_t)text.size());
		close(fd);
		ASSERT_EQ(chmod(path.c_str(), mode), 0);
	}

	std::string Read(const std::string &path)
	{
		std::string s;
		FILE *f = fopen(path.c_str(), "r");
		EXPECT_NE(f, nullptr);
		if (f == nullptr)
			return s;
		char buf[512];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			s.append(buf, n);
		fclose(f);
		return s;
	}

	std::vector<std::string> List(const std::string &d)
	{
		std::vector<std::string> names;
		DIR *dp = opendir(d.c_str());
		EXPECT_NE(dp, nullptr);
		if (dp == nullptr)
			return names;
		struct dirent *de;
		while ((de = readdir(dp)) != nullptr)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				names.push_back(de->d_name);
		closedir(dp);
		return names;
	}

	std::string KeyFile(const char *hex)
	{
		return std::string("{\n\t\"PrivateKey\": \"privkey:") + hex +
		    "\"\n}\n";
	}

	std::string dir_;
	char err_[512] = "";
};

}  // namespace

TEST_F(Keys, GenerateClampedAndDerived)
{
	struct server_key *a = keys_generate();
	struct server_key *b = keys_generate();
	ASSERT_NE(a, nullptr);
	ASSERT_NE(b, nullptr);
	for (struct server_key *k : { a, b }) {
		EXPECT_EQ(k->sk_priv[0] & 7, 0);
		EXPECT_EQ(k->sk_priv[31] & 0x80, 0);
		EXPECT_EQ(k->sk_priv[31] & 0x40, 0x40);
		uint8_t pub[32];
		ASSERT_EQ(crypto_scalarmult_base(pub, k->sk_priv), 0);
		EXPECT_EQ(0, memcmp(pub, k->sk_pub, 32));
	}
	EXPECT_NE(0, memcmp(a->sk_priv, b->sk_priv, 32));
	EXPECT_NE(0, memcmp(a->sk_pub, b->sk_pub, 32));
	keys_free(a);
	keys_free(b);
	keys_free(nullptr);
}

TEST_F(Keys, DerivePublicRfc7748)
{
	struct server_key *k = keys_generate();
	ASSERT_NE(k, nullptr);
	uint8_t want[32];
	FromHex(kAlicePriv, k->sk_priv);
	FromHex(kAlicePub, want);
	keys_derive_public(k);
	EXPECT_EQ(0, memcmp(k->sk_pub, want, 32));
	keys_free(k);
}

TEST_F(Keys, CreateThenLoad)
{
	std::string path = Path("sub/derper.key");
	struct server_key *k = keys_load_or_create(path.c_str(), err_,
	    sizeof(err_));
	ASSERT_NE(k, nullptr) << err_;

	struct stat st;
	ASSERT_EQ(stat(path.c_str(), &st), 0);
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(st.st_mode & 07777, 0600u);
	EXPECT_EQ(List(Path("sub")), std::vector<std::string>{ "derper.key" })
	    << "temp file left behind";

	// {"PrivateKey": "privkey:<64 lowercase hex>"}
	std::string text = Read(path);
	cJSON *root = cJSON_Parse(text.c_str());
	ASSERT_NE(root, nullptr) << text;
	cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "PrivateKey");
	ASSERT_TRUE(cJSON_IsString(it)) << text;
	char hex[65];
	sodium_bin2hex(hex, sizeof(hex), k->sk_priv, 32);
	EXPECT_EQ(std::string(it->valuestring), std::string("privkey:") + hex);
	cJSON_Delete(root);

	struct server_key *k2 = keys_load_or_create(path.c_str(), err_,
	    sizeof(err_));
	ASSERT_NE(k2, nullptr) << err_;
	EXPECT_EQ(0, memcmp(k->sk_priv, k2->sk_priv, 32));
	EXPECT_EQ(0, memcmp(k->sk_pub, k2->sk_pub, 32));
	keys_free(k);
	keys_free(k2);
}

// derper creates the key file's directory with os.MkdirAll (PROTOCOL 4).
TEST_F(Keys, CreatesMissingParentDirectories)
{
	std::string path = Path("a/b/c/derper.key");
	struct server_key *k = keys_load_or_create(path.c_str(), err_,
	    sizeof(err_));
	EXPECT_NE(k, nullptr) << err_;
	struct stat st;
	EXPECT_EQ(stat(path.c_str(), &st), 0);
	keys_free(k);
}

TEST_F(Keys, LoadKnownFile)
{
	std::string path = Path("derper.key");
	Write(path, KeyFile(kAlicePriv), 0600);
	struct server_key *k = keys_load_or_create(path.c_str(), err_,
	    sizeof(err_));
	ASSERT_NE(k, nullptr) << err_;
	uint8_t priv[32], pub[32];
	FromHex(kAlicePriv, priv);
	FromHex(kAlicePub, pub);
	EXPECT_EQ(0, memcmp(k->sk_priv, priv, 32));
	EXPECT_EQ(0, memcmp(k->sk_pub, pub, 32));
	keys_free(k);

	// Read-only for the owner is fine too.
	ASSERT_EQ(chmod(path.c_str(), 0400), 0);
	k = keys_load_or_create(path.c_str(), err_, sizeof(err_));
	ASSERT_NE(k, nullptr) << err_;
	keys_free(k);
}

TEST_F(Keys, GroupOrWorldReadableRefused)
{
	std::string path = Path("derper.key");
	const mode_t modes[] = { 0640, 0604, 0644, 0660, 0606, 0610, 0601 };
	for (mode_t m : modes) {
		Write(path, KeyFile(kAlicePriv), m);
		err_[0] = '\0';
		EXPECT_EQ(keys_load_or_create(path.c_str(), err_, sizeof(err_)),
		    nullptr) << std::oct << m;
		EXPECT_NE(err_[0], '\0');
		EXPECT_EQ(keys_check_secrecy(path.c_str(), err_, sizeof(err_)),
		    -1);
		// It was refused, not replaced.
		EXPECT_EQ(Read(path), KeyFile(kAlicePriv));
	}
	Write(path, KeyFile(kAlicePriv), 0600);
	EXPECT_EQ(keys_check_secrecy(path.c_str(), err_, sizeof(err_)), 0);
	EXPECT_EQ(keys_check_secrecy(Path("missing").c_str(), err_,
	    sizeof(err_)), -1);
}

TEST_F(Keys, BadKeyFilesRefused)
{
	std::string hex(kHex);
	const std::string bad[] = {
		"",
		"not json",
		"{\"PrivateKey\": \"privkey:" + hex + "\"",
		"{}",
		"{\"Foo\": \"privkey:" + hex + "\"}",
		"{\"PrivateKey\": 5}",
		"{\"PrivateKey\": null}",
		"{\"PrivateKey\": \"nodekey:" + hex + "\"}",
		"{\"PrivateKey\": \"" + hex + "\"}",
		"{\"PrivateKey\": \"privkey:" + hex.substr(0, 63) + "\"}",
		"{\"PrivateKey\": \"privkey:" + hex + "00\"}",
		"{\"PrivateKey\": \"privkey:" + hex.substr(0, 63) + "x\"}",
		"[\"privkey:" + hex + "\"]",
	};
	std::string path = Path("derper.key");
	for (const std::string &b : bad) {
		Write(path, b, 0600);
		err_[0] = '\0';
		EXPECT_EQ(keys_load_or_create(path.c_str(), err_, sizeof(err_)),
		    nullptr) << b;
		EXPECT_NE(err_[0], '\0') << b;
		// A bad file is an error, never silently regenerated.
		EXPECT_EQ(Read(path), b);
	}
}

TEST_F(Keys, OversizedFilesRefused)
{
	uint8_t mesh[32];
	std::string path = Path("derper.key");

	Write(path, std::string(64 * 1024 + 1, ' '), 0600);
	EXPECT_EQ(keys_load_or_create(path.c_str(), err_, sizeof(err_)),
	    nullptr);
	EXPECT_EQ(std::string(err_), path + ": file too large");

	path = Path("derp-mesh.key");
	Write(path, std::string(kHex) + std::string(4096 - 64 + 1, '\n'),
	    0600);
	EXPECT_EQ(keys_load_mesh(path.c_str(), mesh, err_, sizeof(err_)), -1);
	EXPECT_EQ(std::string(err_), path + ": file too large");
}

/* A mesh key from a pipe, as a shell's <(...) hands it over. */
TEST_F(Keys, LoadMeshFromPipe)
{
	uint8_t mesh[32], want[32];
	int p[2];
	char path[64];

	FromHex(kHex, want);
	ASSERT_EQ(pipe(p), 0);
	ASSERT_EQ(write(p[1], kHex, 64), 64);
	close(p[1]);
	snprintf(path, sizeof(path), "/dev/fd/%d", p[0]);
	EXPECT_EQ(keys_load_mesh(path, mesh, err_, sizeof(err_)), 0) << err_;
	close(p[0]);
	EXPECT_EQ(0, memcmp(mesh, want, 32));
}

TEST_F(Keys, ParseFile)
{
	uint8_t priv[32], want[32];
	std::string hex(kHex);
	FromHex(kHex, want);

	const std::string good[] = {
		"{\"PrivateKey\":\"privkey:" + hex + "\"}",
		"{\"privatekey\":\"privkey:" + hex + "\"}",
		"{\"PRIVATEKEY\":\"privkey:" + hex + "\"}",
		"{\"PrivateKey\":\"privkey:" + Upper(hex) + "\"}",
		"{\"Other\":1,\"PrivateKey\":\"privkey:" + hex + "\",\"x\":[]}",
		"\n{\n\t\"PrivateKey\": \"privkey:" + hex + "\"\n}\n",
	};
	for (const std::string &g : good) {
		memset(priv, 0, sizeof(priv));
		ASSERT_EQ(keys_parse_file(g.data(), g.size(), priv, err_,
		    sizeof(err_)), 0) << g << ": " << err_;
		EXPECT_EQ(0, memcmp(priv, want, 32)) << g;
	}

	const std::string bad[] = {
		"{\"PrivateKey\":\"PRIVKEY:" + hex + "\"}",
		"{\"PrivateKey\":\"privkey: " + hex.substr(1) + "\"}",
		"{\"PublicKey\":\"privkey:" + hex + "\"}",
		"{\"PrivateKey\":[\"privkey:" + hex + "\"]}",
		"nope",
	};
	for (const std::string &b : bad) {
		err_[0] = '\0';
		EXPECT_EQ(keys_parse_file(b.data(), b.size(), priv, err_,
		    sizeof(err_)), -1) << b;
		EXPECT_NE(err_[0], '\0') << b;
	}
}

TEST_F(Keys, ParseMesh)
{
	uint8_t mesh[32], want[32];
	std::string hex(kHex);
	FromHex(kHex, want);

	const std::string good[] = {
		hex,
		hex + "\n",
		"  " + hex + "  ",
		"\t" + Upper(hex) + "\r\n",
		"\n\n" + hex + "\n\n",
	};
	for (const std::string &g : good) {
		memset(mesh, 0, sizeof(mesh));
		ASSERT_EQ(keys_parse_mesh(g.c_str(), mesh), 0) << g;
		EXPECT_EQ(0, memcmp(mesh, want, 32)) << g;
	}

	const std::string bad[] = {
		"",
		"   \n",
		hex.substr(0, 63),
		hex + "0",
		hex + "00",
		hex.substr(0, 62),
		hex.substr(0, 63) + "g",
		hex.substr(0, 32) + " " + hex.substr(32),
		"nodekey:" + hex,
		"0x" + hex.substr(2),
	};
	for (const std::string &b : bad)
		EXPECT_EQ(keys_parse_mesh(b.c_str(), mesh), -1) << b;
}

TEST_F(Keys, LoadMesh)
{
	uint8_t mesh[32], want[32];
	FromHex(kHex, want);
	std::string path = Path("derp-mesh.key");

	Write(path, std::string(kHex) + "\n", 0600);
	ASSERT_EQ(keys_load_mesh(path.c_str(), mesh, err_, sizeof(err_)), 0)
	    << err_;
	EXPECT_EQ(0, memcmp(mesh, want, 32));

	Write(path, std::string(kHex) + "\n", 0644);
	err_[0] = '\0';
	EXPECT_EQ(keys_load_mesh(path.c_str(), mesh, err_, sizeof(err_)), -1);
	EXPECT_NE(err_[0], '\0');

	Write(path, std::string(kHex).substr(0, 63) + "\n", 0600);
	err_[0] = '\0';
	EXPECT_EQ(keys_load_mesh(path.c_str(), mesh, err_, sizeof(err_)), -1);
	EXPECT_NE(err_[0], '\0');

	Write(path, "", 0600);
	EXPECT_EQ(keys_load_mesh(path.c_str(), mesh, err_, sizeof(err_)), -1);

	err_[0] = '\0';
	EXPECT_EQ(keys_load_mesh(Path("missing").c_str(), mesh, err_,
	    sizeof(err_)), -1);
	EXPECT_NE(err_[0], '\0');
}
