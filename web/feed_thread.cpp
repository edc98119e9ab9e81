#include "web/feed_thread.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "web/server.h"

namespace simpleci::web {

namespace {

// Hands the feed's news to the server through post (copies: the feed reuses its buffers).
class Forward final : public net::FeedHandler {
 public:
  Forward(const Post& post, Server& server) : post_(post), server_(server) {}
  void on_snapshot(const msg::Snapshot& s) override {
    post_([&srv = server_, s] { srv.on_snapshot(s); });
  }
  void on_event(const msg::Event& e) override {
    post_([&srv = server_, e] { srv.on_event(e); });
  }
  void on_output(const msg::JobOutput&) override {}  // the web follows no job: it pulls with WATCH
  void on_interrupted(std::string_view why) override {
    post_([&srv = server_, w = std::string(why)] { srv.on_interrupted(w); });
  }

 private:
  const Post& post_;
  Server& server_;
};

}  // namespace

FeedThread::FeedThread(zmq::context_t& ctx, net::FeedOptions opt, Post post, Server& server)
    : ctx_(ctx), opt_(std::move(opt)), post_(std::move(post)), server_(server),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

FeedThread::~FeedThread() {
  stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void FeedThread::start() { thread_ = std::thread([this] { run(); }); }

void FeedThread::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) < 0) spdlog::warn("web: cannot wake the feed thread");
  thread_.join();
}

void FeedThread::run() {
  SystemClock clock;
  net::Feed feed(ctx_, opt_, clock);
  Forward fwd(post_, server_);
  feed.start();
  for (;;) {
    zmq::pollitem_t items[] = {{feed.socket().handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, feed.wait());
    if (items[1].revents & ZMQ_POLLIN) break;
    if (items[0].revents & ZMQ_POLLIN) feed.process(fwd);
    feed.tick(fwd);
  }
  feed.stop();
}

}  // namespace simpleci::web
