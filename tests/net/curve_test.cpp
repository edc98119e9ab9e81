#include "net/curve.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "net/transport.h"

namespace simpleci::curve {
namespace {

std::filesystem::path temp_dir() {
  char tmpl[] = "/tmp/simpleci-curve-XXXXXX";
  return std::filesystem::path(mkdtemp(tmpl));
}

// Polls until pred() holds or the deadline passes.
template <class P>
bool wait_until(P pred, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::yield();
  }
  return pred();
}

TEST(Curve, KeygenWritesPrivateSecretAndMatchingPublic) {
  const auto dir = temp_dir();
  std::string err;
  ASSERT_TRUE(keygen(dir, "runner1", &err)) << err;
  struct stat st {};
  ASSERT_EQ(::stat((dir / "runner1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string sec, pub, derived;
  ASSERT_TRUE(load_key(dir / "runner1.key", &sec, &err)) << err;
  ASSERT_TRUE(load_key(dir / "runner1.pub", &pub, &err)) << err;
  ASSERT_TRUE(public_from_secret(sec, &derived, &err));
  EXPECT_EQ(pub, derived);
  EXPECT_FALSE(keygen(dir, "runner1", &err));  // never overwrites
  EXPECT_FALSE(keygen(dir, "../x", &err));
  std::filesystem::remove_all(dir);
}

TEST(Curve, RejectsBadKeyFiles) {
  const auto dir = temp_dir();
  std::string err, key;
  std::filesystem::create_directories(dir / "auth");
  { std::FILE* f = std::fopen((dir / "auth" / "bad.pub").c_str(), "w"); std::fputs("short\n", f); std::fclose(f); }
  EXPECT_FALSE(load_key(dir / "auth" / "bad.pub", &key, &err));
  EXPECT_NE(err.find("40-character Z85"), std::string::npos);
  AuthorizedKeys keys;
  EXPECT_FALSE(load_authorized_keys(dir / "auth", &keys, &err));
  EXPECT_FALSE(load_authorized_keys(dir / "missing", &keys, &err));
  std::filesystem::remove_all(dir);
}

TEST(Curve, SecretKeyOpenToGroupOrOthersIsRefusedWithTheFix) {
  const auto dir = temp_dir();
  std::string err, key;
  ASSERT_TRUE(keygen(dir, "builder-7", &err)) << err;
  const auto file = dir / "builder-7.key";
  ASSERT_TRUE(load_secret_key(file, &key, &err)) << err;  // keygen writes 0600

  ::chmod(file.c_str(), 0644);
  EXPECT_FALSE(load_secret_key(file, &key, &err));
  EXPECT_EQ(err, file.string() + " is readable by others (mode 0644); run chmod 600 " + file.string());
  ::chmod(file.c_str(), 0640);
  EXPECT_FALSE(load_secret_key(file, &key, &err));
  EXPECT_EQ(err, file.string() + " is readable by its group (mode 0640); run chmod 600 " + file.string());
  ::chmod(file.c_str(), 0620);
  EXPECT_FALSE(load_secret_key(file, &key, &err));
  EXPECT_EQ(err, file.string() + " is writable by group or others (mode 0620); run chmod 600 " + file.string());
  ::chmod(file.c_str(), 0400);
  EXPECT_TRUE(load_secret_key(file, &key, &err)) << err;
  EXPECT_TRUE(load_key(dir / "builder-7.pub", &key, &err)) << "a public key may be 0644";
  std::filesystem::remove_all(dir);
}

// Makes a key pair in dir/keys and copies its public key to dir/auth/<sub>/<name>.pub.
void authorise(const std::filesystem::path& dir, const std::string& sub, const std::string& name) {
  std::string err;
  std::filesystem::create_directories(dir / "keys");
  std::filesystem::create_directories(dir / "auth" / sub);
  if (!std::filesystem::exists(dir / "keys" / (name + ".pub"))) {
    ASSERT_TRUE(keygen(dir / "keys", name, &err)) << err;
  }
  std::filesystem::copy_file(dir / "keys" / (name + ".pub"), dir / "auth" / sub / (name + ".pub"));
}

// Loads dir/auth and returns each name's role; *without_role: how many keys have role kAny.
std::map<std::string, Role> load_roles(const std::filesystem::path& dir, size_t* without_role) {
  AuthorizedKeys keys;
  std::string err;
  EXPECT_TRUE(load_authorized_keys(dir / "auth", &keys, &err)) << err;
  std::map<std::string, Role> out;
  for (const auto& [key, e] : keys) out[e.name] = e.role;
  *without_role = keys_without_role(keys);
  return out;
}

TEST(Curve, RoleFoldersGiveEachKeyItsRole) {
  const auto dir = temp_dir();
  authorise(dir, "runners", "builder-7");
  authorise(dir, "observers", "watcher");
  authorise(dir, "clients", "dev");
  authorise(dir, "admins", "ops");
  authorise(dir, ".git", "ignored");  // hidden folders are not role folders
  size_t without_role = 9;
  EXPECT_EQ(load_roles(dir, &without_role),
            (std::map<std::string, Role>{{"builder-7", Role::kRunner},
                                         {"watcher", Role::kObserver},
                                         {"dev", Role::kClient},
                                         {"ops", Role::kAdmin}}));
  EXPECT_EQ(without_role, 0u);

  authorise(dir, "", "old-style");  // directly in the folder: every role, as before roles
  EXPECT_EQ(load_roles(dir, &without_role).at("old-style"), Role::kAny);
  EXPECT_EQ(without_role, 1u);
  std::filesystem::remove_all(dir);
}

TEST(Curve, FlatLayoutKeepsEveryRole) {
  const auto dir = temp_dir();
  authorise(dir, "", "r1");
  authorise(dir, "", "admin");
  size_t without_role = 0;
  EXPECT_EQ(load_roles(dir, &without_role),
            (std::map<std::string, Role>{{"r1", Role::kAny}, {"admin", Role::kAny}}));
  EXPECT_EQ(without_role, 2u);
  std::filesystem::remove_all(dir);
}

TEST(Curve, AKeyOrNameListedTwiceIsRefusedAndNothingIsLoaded) {
  const auto dir = temp_dir();
  authorise(dir, "runners", "builder-7");
  authorise(dir, "clients", "dev");
  AuthorizedKeys keys, before;
  std::string err;
  ASSERT_TRUE(load_authorized_keys(dir / "auth", &before, &err)) << err;

  // The same key under another name in another role folder.
  std::filesystem::create_directories(dir / "auth" / "admins");
  std::filesystem::copy_file(dir / "keys" / "builder-7.pub", dir / "auth" / "admins" / "boss.pub");
  keys = before;
  EXPECT_FALSE(load_authorized_keys(dir / "auth", &keys, &err));
  EXPECT_NE(err.find("holds the same key as"), std::string::npos) << err;
  EXPECT_EQ(keys, before) << "a refused folder changes nothing";
  std::filesystem::remove(dir / "auth" / "admins" / "boss.pub");

  // The same name in two role folders (even with different keys).
  std::filesystem::create_directories(dir / "other");
  ASSERT_TRUE(keygen(dir / "other", "dev", &err)) << err;
  std::filesystem::copy_file(dir / "other" / "dev.pub", dir / "auth" / "admins" / "dev.pub");
  EXPECT_FALSE(load_authorized_keys(dir / "auth", &keys, &err));
  EXPECT_NE(err.find("the name 'dev' is listed twice"), std::string::npos) << err;
  std::filesystem::remove(dir / "auth" / "admins" / "dev.pub");

  // A folder that is no role's (a typo would otherwise drop its keys silently).
  authorise(dir, "runner", "typo");
  EXPECT_FALSE(load_authorized_keys(dir / "auth", &keys, &err));
  EXPECT_NE(err.find("holds 'runner/'"), std::string::npos) << err;
  std::filesystem::remove_all(dir);
}

TEST(Curve, ZapAdmitsListedKeysAndNamesThem) {
  const auto dir = temp_dir();
  std::string err, server_sec, server_pub, good_sec, bad_sec;
  ASSERT_TRUE(keygen(dir, "server", &err) && keygen(dir, "good", &err) &&
              keygen(dir / "..", dir.filename().string() + "-bad", &err)) << err;
  load_key(dir / "server.key", &server_sec, &err);
  load_key(dir / "server.pub", &server_pub, &err);
  load_key(dir / "good.key", &good_sec, &err);
  const auto bad_key = dir.parent_path() / (dir.filename().string() + "-bad.key");
  load_key(bad_key, &bad_sec, &err);
  AuthorizedKeys allowed;
  std::filesystem::create_directories(dir / "auth");
  std::filesystem::copy_file(dir / "good.pub", dir / "auth" / "good.pub");
  ASSERT_TRUE(load_authorized_keys(dir / "auth", &allowed, &err)) << err;

  zmq::context_t ctx;
  ZapHandler zap(ctx, allowed);
  zmq::socket_t router = net::make_router(ctx);
  configure_server(router, server_sec);
  router.bind("tcp://127.0.0.1:*");
  const std::string ep = router.get(zmq::sockopt::last_endpoint);

  zmq::socket_t bad(ctx, zmq::socket_type::dealer);
  bad.set(zmq::sockopt::linger, 0);
  configure_client(bad, server_pub, bad_sec);
  bad.connect(ep);
  bad.send(zmq::str_buffer("from-bad"), zmq::send_flags::dontwait);
  ASSERT_TRUE(wait_until([&] { return zap.refused() > 0; }));

  zmq::socket_t good(ctx, zmq::socket_type::dealer);
  good.set(zmq::sockopt::linger, 0);
  configure_client(good, server_pub, good_sec);
  good.connect(ep);
  good.send(zmq::str_buffer("from-good"), zmq::send_flags::none);

  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&item, 1, std::chrono::seconds(10)), 1);
  zmq::message_t id, body;
  ASSERT_TRUE(router.recv(id));
  ASSERT_TRUE(router.recv(body));
  EXPECT_EQ(body.to_string(), "from-good");  // the unlisted client's message never arrived
  EXPECT_STREQ(body.gets("User-Id"), "good");
  EXPECT_EQ(zap.admitted(), 1u);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(bad_key);
  std::filesystem::remove(dir.parent_path() / (dir.filename().string() + "-bad.pub"));
}

}  // namespace
}  // namespace simpleci::curve
