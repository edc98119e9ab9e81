// net::request against a ROUTER in the same process (inproc): the reply carrying the request id
// is returned, late replies are skipped, busy is retried, ERROR is returned, silence times out.
// (Here rather than in tests/net/ because this folder is the client's and the helper is its.)
#include <gtest/gtest.h>

#include <thread>

#include "net/request.h"
#include "net/transport.h"

namespace simpleci::net {
namespace {

using std::chrono::milliseconds;

// A dispatcher stand-in on its own thread: answers each request with the replies `script`
// makes of it (none: silence), for `requests` requests.
class FakeDispatcher {
 public:
  using Script = std::function<std::vector<msg::Message>(const msg::Message& req, int n)>;
  FakeDispatcher(zmq::context_t& ctx, int requests, Script script) : router_(make_router(ctx)) {
    router_.bind("inproc://dispatcher");
    thread_ = std::thread([this, requests, script] {
      for (int n = 0; n < requests; ++n) {
        zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, milliseconds(5000));
        auto r = recv(router_, true);
        if (!r) return;
        const std::string peer(view(r->frames[0]));
        msg::Decoded d = decode_frames(*r, 1);
        for (const auto& m : script(d.message, n)) send_to(router_, peer, m);
      }
    });
  }
  ~FakeDispatcher() { thread_.join(); }

 private:
  zmq::socket_t router_;
  std::thread thread_;
};

TEST(Request, RequestIdOfMessagesWithAndWithoutOne) {
  EXPECT_EQ(request_id_of(msg::StatusRequest{42}), 42u);
  EXPECT_EQ(request_id_of(msg::Register{"r", 1, {}}), 0u);
}

TEST(Request, SkipsLateRepliesAndReturnsTheOneWithItsId) {
  zmq::context_t ctx(1);
  FakeDispatcher d(ctx, 1, [](const msg::Message&, int) {
    return std::vector<msg::Message>{msg::Ok{6, 0, "late"}, msg::Ok{7, 0, "mine"}};
  });
  DealerConnection conn(ctx, "inproc://dispatcher");
  auto m = request(conn, msg::CancelRequest{7, 3}, milliseconds(5000));
  ASSERT_TRUE(m);
  ASSERT_TRUE(std::holds_alternative<msg::Ok>(*m));
  EXPECT_EQ(std::get<msg::Ok>(*m).text, "mine");
}

TEST(Request, BusyIsSentAgainAndAnErrorIsReturned) {
  zmq::context_t ctx(1);
  FakeDispatcher d(ctx, 2, [](const msg::Message&, int n) {
    if (n == 0) return std::vector<msg::Message>{msg::Error{5, msg::ErrorCode::kBusy, "later"}};
    return std::vector<msg::Message>{msg::Error{5, msg::ErrorCode::kNotFound, "no job 9"}};
  });
  DealerConnection conn(ctx, "inproc://dispatcher");
  auto m = request(conn, msg::CancelRequest{5, 9}, milliseconds(5000));
  ASSERT_TRUE(m);
  ASSERT_TRUE(std::holds_alternative<msg::Error>(*m));
  EXPECT_EQ(std::get<msg::Error>(*m).code, msg::ErrorCode::kNotFound);
}

TEST(Request, AnErrorWithoutRequestIdEndsTheWait) {
  zmq::context_t ctx(1);
  FakeDispatcher d(ctx, 1, [](const msg::Message&, int) {
    return std::vector<msg::Message>{msg::Error{0, msg::ErrorCode::kBadRequest, "bad"}};
  });
  DealerConnection conn(ctx, "inproc://dispatcher");
  auto m = request(conn, msg::StatusRequest{3}, milliseconds(5000));
  ASSERT_TRUE(m && std::holds_alternative<msg::Error>(*m));
}

TEST(Request, NoReplyInTimeIsNullopt) {
  zmq::context_t ctx(1);
  FakeDispatcher d(ctx, 1, [](const msg::Message&, int) { return std::vector<msg::Message>{}; });
  DealerConnection conn(ctx, "inproc://dispatcher");
  EXPECT_FALSE(request(conn, msg::StatusRequest{1}, milliseconds(100)));
}

}  // namespace
}  // namespace simpleci::net
