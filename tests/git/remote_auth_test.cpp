// Fetches from private repositories on real servers on loopback: Debian's sshd with its own
// config and host key, and nginx + fcgiwrap + git-http-backend with basic auth over TLS signed by
// a test CA. Every tool is required: a missing one fails the test with its name.
#include <git2.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include "tests/git/servers.h"
#include "tests/shell.h"

#include "git/auth.h"
#include "git/git.h"

namespace simpleci::git {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using simpleci::testing::Child;
using simpleci::testing::file_appears;
using simpleci::testing::free_port;
using simpleci::testing::port_open;
using simpleci::testing::sh;

// Runs cmd through the shell; fails the test with its output when it exits non-zero.
void run(const std::string& cmd) {
  const std::string out = sh("(" + cmd + ") 2>&1; echo \"rc=$?\"");
  ASSERT_TRUE(out.ends_with("rc=0")) << cmd << "\n" << out;
}

void require_tool(const std::string& path) {
  ASSERT_EQ(::access(path.c_str(), X_OK), 0) << path << " is missing: run tools/install-deps";
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write(const fs::path& p, const std::string& text, mode_t mode = 0644) {
  std::ofstream(p) << text;
  ::chmod(p.c_str(), mode);
}

// A temp folder with an upstream repository served bare from <dir>/srv/repo.git and an empty
// clone whose origin the fixture points at its server.
class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    git_libgit2_init();
    char tmpl[] = "/tmp/simpleci-remote-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    const std::string work = (dir_ / "work").string();
    const std::string g = "git -c user.name=t -c user.email=t@t -C " + work + " ";
    run("git init -q -b main " + work + " && " + g + "commit -q --allow-empty -m one");
    run("git clone -q --bare " + work + " " + (dir_ / "srv" / "repo.git").string());
    head_ = sh(g + "rev-parse HEAD");
    clone_ = (dir_ / "clone").string();
    run("git init -q " + clone_);
  }
  void TearDown() override {
    std::string err;
    set_auth({}, &err);
    servers_.clear();
    fs::remove_all(dir_);
    git_libgit2_shutdown();
  }
  void set_origin(const std::string& url) { run("git -C " + clone_ + " remote add origin " + url); }
  // Fetches origin with auth; "" on success (and origin/main then is the upstream's commit).
  std::string fetch(const Auth& auth) {
    std::string err;
    if (!set_auth(auth, &err)) return "set_auth: " + err;
    Repo r = open(clone_, &err);
    if (!r) return err;
    const auto start = std::chrono::steady_clock::now();
    const bool ok = fetch_origin(r.get(), &err);
    // A refused credential must not be retried until the server gives up.
    EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
    if (!ok) return err;
    git_oid id;
    if (!ref_id(r.get(), "refs/remotes/origin/main", &id)) return "no origin/main after the fetch";
    return oid_text(&id) == head_ ? "" : "origin/main is " + oid_text(&id) + ", want " + head_;
  }
  // Starts argv as a server that must accept connections on port within 10 s.
  void serve(const std::vector<std::string>& argv, const std::string& log, int port) {
    servers_.emplace_back(std::make_unique<Child>(argv, (dir_ / log).string()));
    ASSERT_TRUE(port_open(port, 10s)) << argv[0] << " is not listening on " << port << ":\n" << read(dir_ / log);
  }

  fs::path dir_;
  std::string head_, clone_;
  std::vector<std::unique_ptr<Child>> servers_;
};

// sshd on 127.0.0.1:port_ with its own host key, root's authorized key `id` (and `other`, not
// authorized), serving <dir>/srv over ssh://root@127.0.0.1:PORT/<dir>/srv/repo.git.
class SshTest : public RemoteTest {
 protected:
  void SetUp() override {
    RemoteTest::SetUp();
    for (const char* t : {"/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/bin/ssh-agent", "/usr/bin/ssh-add"}) {
      ASSERT_NO_FATAL_FAILURE(require_tool(t));
    }
    ASSERT_EQ(::geteuid(), 0u) << "the SSH tests start sshd, which must run as root";
    const std::string d = dir_.string();
    for (const char* k : {"host_key", "id", "other"}) {
      run("ssh-keygen -q -t ed25519 -N '' -C test -f " + d + "/" + k);
    }
    run("cp " + d + "/id.pub " + d + "/authorized_keys && mkdir -p /run/sshd");
    port_ = free_port();
    write(dir_ / "sshd_config", "Port " + std::to_string(port_) +
                                    "\nListenAddress 127.0.0.1\nHostKey " + d + "/host_key\nAuthorizedKeysFile " + d +
                                    "/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                                    "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile " + d +
                                    "/sshd.pid\n");
    ASSERT_NO_FATAL_FAILURE(serve({"/usr/sbin/sshd", "-D", "-e", "-f", d + "/sshd_config"}, "sshd.log", port_));
    set_origin("ssh://root@127.0.0.1:" + std::to_string(port_) + d + "/srv/repo.git");
    const std::string pub = read(dir_ / "host_key.pub");
    host_entry_ = pub.substr(0, pub.rfind(' '));  // "ssh-ed25519 AAAA..." without the comment
    known_ = (dir_ / "known_hosts").string();
    write(known_, "[127.0.0.1]:" + std::to_string(port_) + " " + host_entry_ + "\n");
  }
  Auth auth(const std::string& key) const {
    Auth a;
    a.ssh_key = (dir_ / key).string();
    a.known_hosts = known_;
    return a;
  }

  int port_ = 0;
  std::string host_entry_, known_;
};

TEST_F(SshTest, RightKeyAndKnownHostFetches) {
  EXPECT_EQ(fetch(auth("id")), "");
  // ls_origin connects the same way.
  std::string err;
  Repo r = open(clone_, &err);
  Tips tips;
  ASSERT_TRUE(ls_origin(r.get(), {"main"}, &tips, &err)) << err;
  EXPECT_EQ(oid_text(&tips["main"]), head_);
}

TEST_F(SshTest, UnknownHostKeyIsRefusedWithOneLine) {
  write(known_, "[127.0.0.1]:" + std::to_string(port_ + 1) + " " + host_entry_ + "\n# nothing for this port\n");
  const std::string fp = sh("ssh-keygen -lf " + (dir_ / "host_key.pub").string() + " | cut -d' ' -f2");
  const std::string port = std::to_string(port_);
  EXPECT_EQ(fetch(auth("id")), "host key of 127.0.0.1 (ssh-ed25519 " + fp + ") is not in " + known_ +
                                   "; check it and add it (ssh-keyscan -p " + port + " 127.0.0.1 >> " + known_ + ")");
  // The line's own advice works.
  run("ssh-keyscan -p " + port + " 127.0.0.1 >> " + known_);
  EXPECT_EQ(fetch(auth("id")), "");
}

TEST_F(SshTest, ADifferentHostKeyIsRefused) {
  const std::string other = read(dir_ / "other.pub");
  write(known_, "[127.0.0.1]:" + std::to_string(port_) + " " + other.substr(0, other.rfind(' ')) + "\n");
  const std::string err = fetch(auth("id"));
  EXPECT_TRUE(err.starts_with("host key of 127.0.0.1 (ssh-ed25519 SHA256:")) << err;
}

TEST_F(SshTest, HashedKnownHostsEntryWorks) {
  run("ssh-keygen -H -f " + known_ + " && rm -f " + known_ + ".old");
  ASSERT_TRUE(read(known_).starts_with("|1|")) << read(known_);
  EXPECT_EQ(fetch(auth("id")), "");
}

TEST_F(SshTest, WrongKeyFailsOnceWithTheKeyNamed) {
  EXPECT_EQ(fetch(auth("other")),
            "authentication to 127.0.0.1 failed with key " + (dir_ / "other").string() + " (user root)");
}

TEST_F(SshTest, AgentKeyWorksAndNoKeyAtAllSaysSo) {
  const std::string sock = (dir_ / "agent.sock").string();
  servers_.emplace_back(std::make_unique<Child>(std::vector<std::string>{"/usr/bin/ssh-agent", "-D", "-a", sock},
                                                (dir_ / "agent.log").string()));
  ASSERT_TRUE(file_appears(sock, 10s)) << read(dir_ / "agent.log");
  run("SSH_AUTH_SOCK=" + sock + " ssh-add -q " + (dir_ / "id").string());
  Auth a;
  a.known_hosts = known_;
  ::setenv("SSH_AUTH_SOCK", sock.c_str(), 1);
  EXPECT_EQ(fetch(a), "");
  ::unsetenv("SSH_AUTH_SOCK");
  EXPECT_EQ(fetch(a), "no SSH key for 127.0.0.1: give --ssh-key FILE or run an ssh-agent (SSH_AUTH_SOCK is not set)");
}

// nginx on 127.0.0.1:port_ over TLS (a certificate for 127.0.0.1 from a test CA), basic auth for
// alice with token s3cret, passing git's smart HTTP to git-http-backend through fcgiwrap.
class HttpsTest : public RemoteTest {
 protected:
  void SetUp() override {
    RemoteTest::SetUp();
    for (const char* t : {"/usr/sbin/nginx", "/usr/sbin/fcgiwrap", "/usr/bin/openssl", "/usr/lib/git-core/git-http-backend"}) {
      ASSERT_NO_FATAL_FAILURE(require_tool(t));
    }
    const std::string d = dir_.string();
    run("cd " + d +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=simpleci-test-ca"
        " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1"
        " && printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\\n' > san.ext"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext"
        " -out server.pem");
    write(dir_ / "htpasswd", "alice:" + sh("openssl passwd -apr1 s3cret") + "\n");
    const std::string fcgi = d + "/fcgi.sock";
    servers_.emplace_back(std::make_unique<Child>(std::vector<std::string>{"/usr/sbin/fcgiwrap", "-s", "unix:" + fcgi},
                                                  d + "/fcgiwrap.log"));
    ASSERT_TRUE(file_appears(fcgi, 10s)) << read(dir_ / "fcgiwrap.log");
    port_ = free_port();
    fs::create_directories(dir_ / "tmp");
    write(dir_ / "nginx.conf",
          "daemon off;\nuser root;\nworker_processes 1;\npid " + d + "/nginx.pid;\nerror_log " + d +
              "/nginx-error.log;\nevents {}\nhttp {\n  access_log off;\n"
              "  client_body_temp_path " + d + "/tmp/body;\n  proxy_temp_path " + d + "/tmp/proxy;\n"
              "  fastcgi_temp_path " + d + "/tmp/fastcgi;\n  uwsgi_temp_path " + d + "/tmp/uwsgi;\n"
              "  scgi_temp_path " + d + "/tmp/scgi;\n"
              "  server {\n    listen 127.0.0.1:" + std::to_string(port_) + " ssl;\n"
              "    ssl_certificate " + d + "/server.pem;\n    ssl_certificate_key " + d + "/server.key;\n"
              "    location / {\n      auth_basic git;\n      auth_basic_user_file " + d + "/htpasswd;\n"
              "      include /etc/nginx/fastcgi_params;\n"
              "      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;\n"
              "      fastcgi_param GIT_PROJECT_ROOT " + d + "/srv;\n      fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n"
              "      fastcgi_param PATH_INFO $uri;\n      fastcgi_param REMOTE_USER $remote_user;\n"
              "      fastcgi_pass unix:" + fcgi + ";\n    }\n  }\n}\n");
    ASSERT_NO_FATAL_FAILURE(
        serve({"/usr/sbin/nginx", "-e", d + "/nginx-error.log", "-p", d, "-c", d + "/nginx.conf"}, "nginx.log", port_));
    url_ = "https://127.0.0.1:" + std::to_string(port_) + "/repo.git";
    set_origin(url_);
  }
  Auth auth(const std::string& token, bool with_ca = true) {
    Auth a;
    a.credentials_file = (dir_ / "credentials").string();
    write(a.credentials_file, "https://alice:" + token + "@127.0.0.1:" + std::to_string(port_) + "\n", 0600);
    if (with_ca) a.ca_file = (dir_ / "ca.pem").string();
    return a;
  }

  int port_ = 0;
  std::string url_;
};

TEST_F(HttpsTest, RightTokenFetches) { EXPECT_EQ(fetch(auth("s3cret")), "") << read(dir_ / "nginx-error.log"); }

TEST_F(HttpsTest, WrongTokenFailsOnceWithTheEntryNamed) {
  EXPECT_EQ(fetch(auth("wrong")),
            "authentication to 127.0.0.1 failed with the token for https://alice@127.0.0.1:" + std::to_string(port_));
}

TEST_F(HttpsTest, NoCredentialsSaysWhichUrlAskedForThem) {
  Auth a = auth("s3cret");
  a.credentials_file.clear();
  EXPECT_EQ(fetch(a), "127.0.0.1 asks for a user and token for " + url_ + "; give them with --git-credentials FILE");
}

TEST_F(HttpsTest, UnknownCaIsATlsRefusal) {
  const std::string err = fetch(auth("s3cret", false));
  EXPECT_TRUE(err.starts_with("the TLS certificate of 127.0.0.1 is not trusted")) << err;
}

}  // namespace
}  // namespace simpleci::git
