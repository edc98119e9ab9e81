#include "messages/curve.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "messages/transport.h"

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
  std::map<std::string, std::string> keys;
  EXPECT_FALSE(load_authorized_keys(dir / "auth", &keys, &err));
  EXPECT_FALSE(load_authorized_keys(dir / "missing", &keys, &err));
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
  std::map<std::string, std::string> allowed;
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
