#include "web/output.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "web/server.h"

namespace simpleci::web {

namespace {

const std::string_view kChunkedHead =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Cache-Control: no-cache\r\n"
    "X-Accel-Buffering: no\r\n"
    "Connection: close\r\n"
    "\r\n";

// Output streams alive. When the last one ends, the memory their replies took (1 MiB each,
// decoded on the worker threads, so spread over glibc's per-thread arenas) goes back to the
// system: a reader that is gone costs nothing.
std::atomic<int> g_streams{0};

class OutputStream : public std::enable_shared_from_this<OutputStream> {
 public:
  OutputStream(Context& ctx, tcp::socket sock, uint64_t job_id, uint64_t offset)
      : ctx_(ctx), sock_(std::move(sock)), timer_(std::make_shared<asio::steady_timer>(ctx.ioc)),
        job_id_(job_id), offset_(offset) {
    ++g_streams;
  }
  ~OutputStream() {
    if (--g_streams == 0) ::malloc_trim(0);
  }
  OutputStream(const OutputStream&) = delete;
  OutputStream& operator=(const OutputStream&) = delete;

  void start() {
    watch_hangup();
    ask();
  }

 private:
  void ask() {
    if (gone_) return;
    msg::WatchRequest w;
    w.job_id = job_id_;
    w.attempt = attempt_;
    w.offset = offset_;
    bool queued = ctx_.pool.submit(w, [self = shared_from_this()](Reply r) { self->on_reply(std::move(r)); });
    if (!queued) fail({503, "too many requests waiting for the dispatcher"});
  }

  void on_reply(Reply r) {
    if (gone_) return;
    auto* w = r ? std::get_if<msg::WatchReply>(&*r) : nullptr;
    if (!w) return fail(dispatcher_failure(r));
    std::string head;
    if (!started_) {
      started_ = true;
      head = kChunkedHead;
    }
    if (attempt_ != 0 && w->attempt != attempt_) {
      // The job was started again: its bytes begin the new attempt's output.
      head += chunk(fmt::format("\n[simpleci-web: attempt {} started; its output follows]\n", w->attempt));
      offset_ = w->offset;
    }
    attempt_ = w->attempt;
    if (w->offset > offset_ && !msg::is_final(w->status)) {
      // The dispatcher's window moved past us: wait for the stored output, which keeps them.
      waiting_final_ = true;
      return head.empty() ? wait() : write(std::move(head), false);
    }
    if (w->offset > offset_) {
      spdlog::warn("web: job {} output: bytes {}..{} are not stored (output cap)", job_id_, offset_, w->offset);
    }
    waiting_final_ = false;
    // A reply may start before the offset asked for (the first one, asked without an attempt,
    // starts the attempt at 0): the bytes before it were written already or not wanted.
    std::string_view data = w->data;
    data.remove_prefix(std::min<uint64_t>(offset_ > w->offset ? offset_ - w->offset : 0, data.size()));
    offset_ = std::max<uint64_t>(offset_, w->offset + w->data.size());
    if (!data.empty()) head += chunk(data);
    if (w->complete) head += "0\r\n\r\n";
    if (head.empty()) return w->data.empty() ? wait() : ask();  // all skipped: more may be there
    write(std::move(head), w->complete);
  }

  static std::string chunk(std::string_view data) {
    return fmt::format("{:x}\r\n", data.size()) + std::string(data) + "\r\n";
  }

  void write(std::string bytes, bool last) {
    out_ = std::move(bytes);
    asio::async_write(sock_, asio::buffer(out_), [self = shared_from_this(), last](auto ec, size_t) {
      self->out_.clear();
      self->out_.shrink_to_fit();
      if (ec || last) return self->end();
      // Asks for more only now that the reader took this chunk: a slow reader slows the pull.
      self->waiting_final_ ? self->wait() : self->ask();
    });
  }

  // Until an event about the job or the poll interval; while the bytes we need are only in the
  // store, until the job is final (no point asking while the model says it runs).
  void wait() {
    ctx_.waiters.add(job_id_, timer_);
    timer_->expires_after(kOutputPoll);
    timer_->async_wait([self = shared_from_this()](auto) {
      if (self->gone_) return;
      if (self->waiting_final_ && self->ctx_.model.in_step() && self->ctx_.model.running(self->job_id_)) {
        return self->wait();
      }
      self->ask();
    });
  }

  void watch_hangup() {
    sock_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](auto ec, size_t) {
      if (ec) return self->end();
      self->watch_hangup();
    });
  }

  void fail(const std::pair<int, std::string>& why) {
    if (started_) return end();  // the chunked body ends without its last chunk: the reader sees it cut
    started_ = true;
    spdlog::warn("web: job {} output: {}", job_id_, why.second);
    write(raw_response(why.first, "application/json", error_body(why.second)), true);
  }

  void end() {
    if (gone_) return;
    gone_ = true;
    boost::system::error_code ignored;
    timer_->cancel();
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    sock_.close(ignored);
  }

  Context& ctx_;
  tcp::socket sock_;
  std::shared_ptr<asio::steady_timer> timer_;
  uint64_t job_id_, offset_;
  uint32_t attempt_ = 0;
  bool started_ = false, waiting_final_ = false, gone_ = false;
  std::string out_;
  char scratch_[256];
};

}  // namespace

void start_output(Context& ctx, tcp::socket sock, uint64_t job_id, uint64_t offset) {
  std::make_shared<OutputStream>(ctx, std::move(sock), job_id, offset)->start();
}

}  // namespace simpleci::web
