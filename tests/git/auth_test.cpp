// The pieces of fetch authentication that need no server: URLs, the credential-store parser and
// matcher, the known_hosts matcher, fingerprints and set_auth's checks of its files.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "tests/shell.h"

#include "git/auth.h"

namespace simpleci::git {
namespace {

namespace fs = std::filesystem;

// Two ed25519 public keys made with ssh-keygen, and ssh-keygen -H's hashes of "host.example" and
// "[127.0.0.1]:2222" for the first; its fingerprint as ssh-keygen -l printed it.
constexpr const char* kKey1 = "AAAAC3NzaC1lZDI1NTE5AAAAILX/2BzBVKsKSPsDIoS7cEI99ln20nR7HPou4YzOpI1a";
constexpr const char* kKey2 = "AAAAC3NzaC1lZDI1NTE5AAAAIPW3qL90c7QWQVp/pNOVagTpy7NzzX2y4KYZAEizSut4";
constexpr const char* kHashedHost = "|1|uxCzs+/jAGB1kpyb+AhJz+7YGfA=|6tv2zXOu37rBm4M3QksTbo94nfI=";
constexpr const char* kHashedHostPort = "|1|eJOPGVmO64goLeD6WbnD9TG/ZIU=|FvVmMSHh+/bgsbFNaoaYVpY+DDM=";
constexpr const char* kFingerprint1 = "SHA256:gmY6OOeXRnsvtawWTdHB7t9YC/NNexetLOlS6JY/Kp4";

std::string unbase64(const std::string& in) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int nbits = 0;
  for (char c : in) {
    if (c == '=') break;
    bits = bits << 6 | static_cast<unsigned>(kAlphabet.find(c));
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((bits >> nbits) & 0xff));
    }
  }
  return out;
}

TEST(ParseUrl, KnowsSshScpLikeAndHttps) {
  UrlParts u = parse_url("ssh://root@127.0.0.1:2222/srv/repo.git");
  EXPECT_EQ(u.scheme, "ssh");
  EXPECT_EQ(u.user, "root");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 2222);
  EXPECT_EQ(u.path, "srv/repo.git");
  u = parse_url("git@github.com:org/repo.git");
  EXPECT_EQ(u.scheme, "ssh");
  EXPECT_EQ(u.user, "git");
  EXPECT_EQ(u.host, "github.com");
  EXPECT_EQ(u.port, 22);
  EXPECT_EQ(u.path, "org/repo.git");
  u = parse_url("https://[::1]:8443/git/repo");
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(parse_url("https://example.com/r").port, 443);
  EXPECT_EQ(parse_url("/srv/repo").scheme, "");
  EXPECT_EQ(parse_url("file:///srv/repo").scheme, "");
  EXPECT_EQ(parse_url("https://host:99999/r").scheme, "");
}

TEST(Credentials, ParsesLinesDecodesAndSkipsBlankLines) {
  std::vector<Credential> c;
  std::string err;
  ASSERT_TRUE(parse_credentials("https://bob:t%40k%3Aen@git.example.com\n\n  \r\n"
                                "https://ann:abc@Git.Example.com:8443/org/repo/\n",
                                "creds", &c, &err))
      << err;
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].user, "bob");
  EXPECT_EQ(c[0].token, "t@k:en");
  EXPECT_EQ(c[0].host, "git.example.com");
  EXPECT_EQ(c[0].port, 443);
  EXPECT_EQ(c[0].path, "");
  EXPECT_EQ(c[1].host, "git.example.com");
  EXPECT_EQ(c[1].port, 8443);
  EXPECT_EQ(c[1].path, "org/repo");
}

TEST(Credentials, ABadLineNamesFileAndLineButNotTheToken) {
  std::vector<Credential> c;
  std::string err;
  EXPECT_FALSE(parse_credentials("https://a:b@h\n\nhttps://secret@h\n", "/x/creds", &c, &err));
  EXPECT_EQ(err, "/x/creds:3: no user:token@ before the host");
  EXPECT_FALSE(parse_credentials("ftp://a:b@h\n", "f", &c, &err));
  EXPECT_EQ(err, "f:1: not a credential line: want https://user:token@host[:port][/path]");
  EXPECT_FALSE(parse_credentials("https://a:b%zz@h\n", "f", &c, &err));
  EXPECT_EQ(err, "f:1: a bad %-escape in the user or the token");
  EXPECT_FALSE(parse_credentials("https://a:b@h:0/x\n", "f", &c, &err));
  EXPECT_EQ(err, "f:1: a bad host or port");
}

TEST(Credentials, LongestMatchingPathWinsAndHostPortSchemeMustMatch) {
  std::vector<Credential> c;
  std::string err;
  ASSERT_TRUE(parse_credentials("https://any:1@h\nhttps://org:2@h/org\nhttps://repo:3@h/org/repo\n"
                                "https://other:4@h:8443\nhttp://plain:5@h\n",
                                "f", &c, &err));
  auto user = [&](const std::string& url) {
    const Credential* m = match_credential(c, url);
    return m ? m->user : std::string("none");
  };
  EXPECT_EQ(user("https://h/org/repo.git"), "repo");
  EXPECT_EQ(user("https://h/org/repo/sub"), "repo");
  EXPECT_EQ(user("https://h/org/repository"), "org");
  EXPECT_EQ(user("https://h/elsewhere"), "any");
  EXPECT_EQ(user("https://H:443/x"), "any");
  EXPECT_EQ(user("https://h:8443/org/repo"), "other");
  EXPECT_EQ(user("http://h/org"), "plain");
  EXPECT_EQ(user("https://g/org"), "none");
  EXPECT_EQ(user("https://org@h/org/repo"), "org");
  EXPECT_EQ(user("ssh://h/org"), "none");
}

TEST(KnownHosts, PlainBracketedListsAndWildcards) {
  const std::string blob = unbase64(kKey1);
  const std::string text = std::string("# a comment\n\n") + "alpha,beta.example ssh-ed25519 " + kKey1 + " c\n" +
                           "[127.0.0.1]:2222 ssh-ed25519 " + kKey1 + "\n" + "*.wild.example,!bad.wild.example ssh-ed25519 " +
                           kKey1 + "\n";
  EXPECT_TRUE(known_host(text, "alpha", 22, blob));
  EXPECT_TRUE(known_host(text, "BETA.example", 22, blob));
  EXPECT_FALSE(known_host(text, "alpha", 2200, blob));  // a plain name is port 22 only
  EXPECT_TRUE(known_host(text, "127.0.0.1", 2222, blob));
  EXPECT_FALSE(known_host(text, "127.0.0.1", 22, blob));
  EXPECT_TRUE(known_host(text, "x.wild.example", 22, blob));
  EXPECT_FALSE(known_host(text, "bad.wild.example", 22, blob));
  EXPECT_FALSE(known_host(text, "alpha", 22, unbase64(kKey2)));  // a different key
  EXPECT_FALSE(known_host(text, "gamma", 22, blob));
}

TEST(KnownHosts, HashedNames) {
  const std::string blob = unbase64(kKey1);
  const std::string text = std::string(kHashedHost) + " ssh-ed25519 " + kKey1 + "\n" + kHashedHostPort +
                           " ssh-ed25519 " + kKey1 + "\n";
  EXPECT_TRUE(known_host(text, "host.example", 22, blob));
  EXPECT_TRUE(known_host(text, "127.0.0.1", 2222, blob));
  EXPECT_FALSE(known_host(text, "host.example", 2222, blob));
  EXPECT_FALSE(known_host(text, "other.example", 22, blob));
  EXPECT_FALSE(known_host(text, "host.example", 22, unbase64(kKey2)));
}

TEST(KnownHosts, MarkersAndTypeMismatchesAreIgnored) {
  const std::string blob = unbase64(kKey1);
  EXPECT_FALSE(known_host(std::string("@cert-authority *.example ssh-ed25519 ") + kKey1 + "\n", "a.example", 22, blob));
  EXPECT_FALSE(known_host(std::string("@revoked a.example ssh-ed25519 ") + kKey1 + "\n", "a.example", 22, blob));
  EXPECT_FALSE(known_host(std::string("a.example ssh-rsa ") + kKey1 + "\n", "a.example", 22, blob));
  EXPECT_FALSE(known_host("a.example ssh-ed25519 not-base64!\n", "a.example", 22, blob));
}

TEST(KnownHosts, FingerprintAndTypeAsSshKeygenShowsThem) {
  EXPECT_EQ(fingerprint(unbase64(kKey1)), kFingerprint1);
  EXPECT_EQ(key_type(unbase64(kKey1)), "ssh-ed25519");
  EXPECT_EQ(key_type("\0\0"), "");
}

class SetAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/simpleci-auth-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override {
    std::string err;
    set_auth({}, &err);
    fs::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& text, mode_t mode) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  fs::path dir_;
};

TEST_F(SetAuthTest, RefusesMissingFilesOpenPermissionsAndBadLines) {
  std::string err;
  Auth a;
  a.ssh_key = (dir_ / "nokey").string();
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, "--ssh-key: no such file: " + a.ssh_key);

  a.ssh_key = write("key", "k", 0644);
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, "--ssh-key: permissions 0644 for " + a.ssh_key +
                     " are too open: it must be readable by its owner only (chmod 600 " + a.ssh_key + ")");
  ::chmod(a.ssh_key.c_str(), 0600);
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, "--ssh-key: no such file: " + a.ssh_key + ".pub (the public half of the key)");
  write("key.pub", "p", 0644);
  EXPECT_TRUE(set_auth(a, &err)) << err;

  a.known_hosts = (dir_ / "kh").string();
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, "--ssh-known-hosts: no such file: " + a.known_hosts);
  write("kh", "", 0644);

  a.credentials_file = write("creds", "https://a:b@h\nnonsense\n", 0640);
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, "--git-credentials: permissions 0640 for " + a.credentials_file +
                     " are too open: it must be readable by its owner only (chmod 600 " + a.credentials_file + ")");
  ::chmod(a.credentials_file.c_str(), 0600);
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, a.credentials_file + ":2: not a credential line: want https://user:token@host[:port][/path]");
  write("creds", "https://a:b@h\n", 0600);
  EXPECT_TRUE(set_auth(a, &err)) << err;

  a.ca_file = (dir_ / "ca.pem").string();
  EXPECT_FALSE(set_auth(a, &err));
  EXPECT_EQ(err, "--ca-file: no such file: " + a.ca_file);
}

TEST_F(SetAuthTest, RefusesKeysWithAPassphraseInEitherFormat) {
  const std::string d = dir_.string();
  simpleci::testing::sh("cd " + d + " && ssh-keygen -q -t ed25519 -N '' -f plain && ssh-keygen -q -t ed25519 -N secret -f locked"
                        " && ssh-keygen -q -t ecdsa -m PEM -N '' -f plain_pem && ssh-keygen -q -t ecdsa -m PEM -N secret -f locked_pem");
  std::string err;
  for (const char* name : {"plain", "plain_pem"}) {
    Auth a;
    a.ssh_key = d + "/" + name;
    EXPECT_TRUE(set_auth(a, &err)) << name << ": " << err;
  }
  for (const char* name : {"locked", "locked_pem"}) {
    Auth a;
    a.ssh_key = d + "/" + name;
    EXPECT_FALSE(set_auth(a, &err)) << name;
    EXPECT_EQ(err, "--ssh-key: " + a.ssh_key + " is protected by a passphrase, which a fetch cannot give; use a key "
                   "without one or leave --ssh-key out and add the key to an ssh-agent (SSH_AUTH_SOCK)");
  }
}

TEST(AuthFlags, FillAuth) {
  CLI::App app;
  Auth a;
  add_auth_flags(app, a);
  app.parse(std::vector<std::string>{"ca.pem", "--ca-file", "creds", "--git-credentials", "kh", "--ssh-known-hosts",
                                     "id", "--ssh-key"});  // CLI11 takes a reversed vector
  EXPECT_EQ(a.ssh_key, "id");
  EXPECT_EQ(a.known_hosts, "kh");
  EXPECT_EQ(a.credentials_file, "creds");
  EXPECT_EQ(a.ca_file, "ca.pem");
}

}  // namespace
}  // namespace simpleci::git
