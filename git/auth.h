// Credentials for fetching private repositories (docs/MULTI.md, "Private repositories"): an SSH
// key or the ssh-agent with host keys checked against a known_hosts file, and user/token pairs
// for HTTPS from a git credential-store file. They stay in this process; nothing about them
// crosses the bus.
#pragma once

#include <git2.h>

#include <set>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace simpleci::git {

// What the runner's or the observer's flags say about fetch authentication.
struct Auth {
  std::string ssh_key;           // private key file; its public half is FILE.pub ("" = the agent)
  std::string known_hosts;       // "" = ~/.ssh/known_hosts
  std::string credentials_file;  // git credential-store format; "" = none
  std::string ca_file;           // a CA added to the system store for HTTPS; "" = none
};

// Checks auth (the files exist and are readable; the key and the credentials file are not
// readable by group or others; every credentials line parses) and makes it the configuration
// of every later fetch and ls in git.h. Call once at start, before any thread fetches; false with
// a one-line *err (naming the flag and the file) and nothing changed when a check fails.
bool set_auth(const Auth& auth, std::string* err);

// Declares --ssh-key, --ssh-known-hosts, --git-credentials and --ca-file on app, filling auth;
// the caller passes auth to set_auth() once the flags are parsed.
void add_auth_flags(CLI::App& app, Auth& auth);

// The parts of a repository URL that authentication needs: ssh://[user@]host[:port]/path,
// scp-like [user@]host:path (port 22), http(s)://[user@]host[:port]/path. host keeps no brackets.
struct UrlParts {
  std::string scheme;  // "ssh", "https", "http", or "" for what this does not know
  std::string user, host, path;
  int port = 0;
};
UrlParts parse_url(const std::string& url);

// One line of a credential-store file, user and token URL-decoded, path without slashes at
// either end.
struct Credential {
  std::string scheme, host, path, user, token;
  int port = 0;
};

// Parses a credential-store file's text: one scheme://user:token@host[:port][/path] a line
// (http or https), blank lines ignored. False with "FILE:LINE: ..." in *err on a bad line (the
// line itself is not repeated: it holds a token).
bool parse_credentials(const std::string& text, const std::string& file, std::vector<Credential>* out,
                       std::string* err);

// The entry for url: scheme, host and port equal (a user in url must equal the entry's too),
// the entry's path a prefix of url's path by whole segments ("" matches any); the longest path
// wins. nullptr when none matches.
const Credential* match_credential(const std::vector<Credential>& creds, const std::string& url);

// Whether the known_hosts text lists key_blob (the host key in SSH wire format, as the server
// sent it) for host at port: plain names, "[host]:port" names, comma-separated lists and hashed
// "|1|salt|hmac" names; comments and lines with markers (@cert-authority, @revoked) are ignored.
bool known_host(const std::string& text, const std::string& host, int port, const std::string& key_blob);

// "SHA256:<base64 of the blob's SHA-256, no padding>", as ssh-keygen -l prints it.
std::string fingerprint(const std::string& key_blob);

// The key type named at the start of an SSH wire-format key blob ("ssh-ed25519", ...); "" when
// the blob is too short to hold one.
std::string key_type(const std::string& key_blob);

// The remote callbacks of one connection to url, with the configuration set_auth() made.
// Answers each URL's credential request once; after a refusal, and on an unknown host key or an
// untrusted certificate, it fails the connection and keeps one line saying why in failure().
// Not copyable: callbacks point at it; it must outlive the connection.
class Session {
 public:
  explicit Session(std::string url);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Fills the credentials and certificate callbacks of *cb.
  void apply(git_remote_callbacks* cb);

  // Why authentication stopped the connection; "" when it did not.
  const std::string& failure() const { return failure_; }

 private:
  static int on_credentials(git_credential** out, const char* url, const char* user, unsigned int allowed,
                            void* payload);
  static int on_certificate(git_cert* cert, int valid, const char* host, void* payload);
  int credentials(git_credential** out, const std::string& url, const char* user, unsigned int allowed);
  int ssh_credentials(git_credential** out, const UrlParts& u, const std::string& user);
  int http_credentials(git_credential** out, const std::string& url, const UrlParts& u);
  int certificate(git_cert* cert, int valid, const std::string& host);
  int fail(std::string why);

  std::string url_;
  UrlParts parts_;
  std::set<std::string> answered_;  // URLs whose credentials were given once already
  std::string refusal_;             // what to say when an answered URL asks again
  std::string failure_;
};

}  // namespace simpleci::git
