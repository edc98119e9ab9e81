#include "web/server.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "messages/summary_json.h"
#include "messages/validate.h"
#include "web/metrics.h"
#include "web/output.h"
#include "web/sse.h"
#include "web/static_files.h"

namespace simpleci::web {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr std::chrono::seconds kRequestTimeout{30};  // to send a request's head

using Response = http::response<http::string_body>;

// An answer to send: status, type, body, and headers beyond those.
struct Answer {
  http::status status = http::status::ok;
  std::string type = "application/json";
  std::string body;
  std::vector<std::pair<http::field, std::string>> headers;
};

Answer json_answer(const nlohmann::json& j) { return {http::status::ok, "application/json", msg::json_text(j) + "\n", {}}; }

Answer error_answer(int status, std::string_view text) {
  return {static_cast<http::status>(status), "application/json", error_body(text), {}};
}

// The type a one-argument lambda takes.
template <class F>
struct ArgOf : ArgOf<decltype(&F::operator())> {};
template <class C, class R, class A>
struct ArgOf<R (C::*)(A) const> {
  using type = std::decay_t<A>;
};

// One HTTP connection: reads requests (keep-alive) and answers them, until one of them hands
// the socket to an event stream or an output stream.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Context& ctx, tcp::socket sock) : ctx_(ctx), stream_(std::move(sock)) {}

  void read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::end_of_stream || ec == beast::error::timeout) return self->close();
      if (ec) {
        // A request that does not parse gets one answer; a connection that broke gets none.
        if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
          return self->send(error_answer(400, "bad request: " + ec.message()), false);
        }
        return self->close();
      }
      self->handle();
    });
  }

 private:
  void handle() {
    const auto& req = parser_->get();
    stream_.expires_never();
    keep_alive_ = req.keep_alive();
    std::string err;
    auto t = parse_target(std::string_view(req.target().data(), req.target().size()), &err);
    spdlog::debug("web: {} {}", std::string_view(req.method_string().data(), req.method_string().size()),
                  std::string_view(req.target().data(), req.target().size()));
    if (req.method() != http::verb::get) {
      Answer a = error_answer(405, "only GET is served");
      a.headers.emplace_back(http::field::allow, "GET");
      return send(std::move(a), keep_alive_);
    }
    if (!t) return send(error_answer(400, err), keep_alive_);
    route(*t);
  }

  void route(const Target& t) {
    const std::string& p = t.path;
    if (p == "/" || p == "/index.html") return send_static("index.html");
    if (p.starts_with("/static/")) return send_static(p.substr(8));
    if (p == "/api/status") return send(json_answer(ctx_.model.status()), keep_alive_);
    if (p == "/api/events") return start_events(t);
    if (p == "/api/jobs") return list_jobs(t);
    if (p.starts_with("/api/jobs/")) return job(t, p.substr(10));
    if (p.starts_with("/badge/") && p.ends_with(".svg")) return badge(p.substr(7, p.size() - 11));
    if (p == "/metrics") return metrics();
    send(error_answer(404, "no such path: " + p), keep_alive_);
  }

  void send_static(std::string_view path) {
    const StaticFile* f = path.find("..") == std::string_view::npos ? find_static(path) : nullptr;
    if (!f) return send(error_answer(404, "no such file: " + std::string(path)), keep_alive_);
    Answer a{http::status::ok, std::string(content_type(path)), {}, {}};
    a.headers.emplace_back(http::field::etag, std::string(f->etag));
    // Revalidated every time: a new build may serve other files at the same paths.
    a.headers.emplace_back(http::field::cache_control, "no-cache");
    const auto& req = parser_->get();
    auto inm = req[http::field::if_none_match];
    if (std::string_view(inm.data(), inm.size()) == f->etag) {
      a.status = http::status::not_modified;
    } else {
      a.body = std::string(f->data);
    }
    send(std::move(a), keep_alive_);
  }

  void start_events(const Target& t) {
    std::optional<EventId> last;
    const auto& req = parser_->get();
    auto header = req["Last-Event-ID"];
    std::string value(header.data(), header.size());
    if (auto q = t.query.find("last_event_id"); value.empty() && q != t.query.end()) value = q->second;
    if (!value.empty()) {
      last = parse_event_id(value);
      // A bare seq (an id from before ids named their feed) is refused too: it cannot say
      // which feed it counts in.
      if (!last) {
        return send(error_answer(400, "Last-Event-ID must be an event id <feed>-<seq> (two decimal "
                                      "numbers, as /api/status's event_id), got '" + value + "'"),
                    false);
      }
    }
    ctx_.hub->start(stream_.release_socket(), last, ctx_.model);
  }

  void list_jobs(const Target& t) {
    std::string err;
    auto r = jobs_request(t.query, &err);
    if (!r) return send(error_answer(400, err), keep_alive_);
    ask(*r, [](const msg::ResultsReply& rr) {
      nlohmann::json jobs = nlohmann::json::array();
      for (const auto& j : rr.jobs) jobs.push_back(msg::summary_json(j));
      return json_answer({{"jobs", std::move(jobs)}});
    });
  }

  void job(const Target& t, std::string_view rest) {
    bool output = rest.ends_with("/output");
    if (output) rest.remove_suffix(7);
    auto id = parse_job_id(rest);
    if (!id) return send(error_answer(400, "not a job id: '" + std::string(rest) + "'"), keep_alive_);
    if (output) {
      uint64_t offset = 0;
      if (auto q = t.query.find("offset"); q != t.query.end()) {
        auto o = parse_offset(q->second);
        if (!o) return send(error_answer(400, "offset must be a number 0..2^50, got '" + q->second + "'"), false);
        offset = *o;
      }
      return start_output(ctx_, stream_.release_socket(), *id, offset);
    }
    for (const auto& [key, v] : t.query) {
      return send(error_answer(400, "unknown parameter '" + key + "'"), keep_alive_);
    }
    msg::JobsRequest r;
    r.before_job_id = *id + 1;
    r.limit = 1;
    uint64_t want = *id;
    ask(r, [this, want](const msg::ResultsReply& rr) {
      if (rr.jobs.empty() || rr.jobs[0].job_id != want) return error_answer(404, "no job " + std::to_string(want));
      // The feed's view of a running job is newer than the store's.
      const msg::JobSummary* live = ctx_.model.running(want);
      nlohmann::json j = msg::summary_json(live ? *live : rr.jobs[0]);
      j["live"] = live != nullptr;
      return json_answer(j);
    });
  }

  void badge(std::string_view branch) {
    if (branch.empty() || !is_valid_branch(branch)) {
      return send(error_answer(400, "not a valid branch name: '" + std::string(branch) + "'"), keep_alive_);
    }
    msg::JobsRequest r;
    r.branch = branch;
    r.statuses = final_status_bits();
    r.limit = 1;
    ask(r, [b = std::string(branch)](const msg::ResultsReply& rr) {
      std::string word = rr.jobs.empty() ? "none" : std::string(msg::to_string(rr.jobs[0].status));
      Answer a{http::status::ok, "image/svg+xml", badge_svg(b, word), {}};
      a.headers.emplace_back(http::field::cache_control, "no-cache");
      return a;
    });
  }

  void metrics() {
    ask(msg::MetricsRequest{}, [](const msg::MetricsReply& m) {
      return Answer{http::status::ok, std::string(kPrometheusContentType), prometheus_text(m.metrics, SIMPLECI_VERSION), {}};
    });
  }

  // Sends req through the pool; answers with make(reply) when the reply is of the type make
  // takes, else with what the failure means.
  template <class Body, class Make>
  void ask(Body req, Make make) {
    using ReplyBody = typename ArgOf<Make>::type;
    bool queued = ctx_.pool.submit(std::move(req), [self = shared_from_this(), make](Reply r) {
      const auto* body = r ? std::get_if<ReplyBody>(&*r) : nullptr;
      if (!body) {
        auto [status, text] = dispatcher_failure(r);
        spdlog::warn("web: {}: {}", self->target(), text);
        return self->send(error_answer(status, text), self->keep_alive_);
      }
      self->send(make(*body), self->keep_alive_);
    });
    if (!queued) send(error_answer(503, "too many requests waiting for the dispatcher"), false);
  }

  std::string target() const {
    auto t = parser_->get().target();
    return std::string(t.data(), t.size());
  }

  void send(Answer a, bool keep_alive) {
    auto res = std::make_shared<Response>(a.status, 11);
    res->set(http::field::server, "simpleci-web");
    res->set(http::field::content_type, a.type);
    for (auto& [f, v] : a.headers) res->set(f, v);
    res->body() = std::move(a.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    if (static_cast<int>(a.status) >= 500) spdlog::warn("web: answered {}", static_cast<int>(a.status));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  Context& ctx_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  bool keep_alive_ = false;
};

}  // namespace

std::string raw_response(int status, std::string_view content_type, std::string_view body) {
  auto reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason.data(), reason.size()) +
                    "\r\nContent-Type: " + std::string(content_type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  return out + std::string(body);
}

std::string error_body(std::string_view text) {
  return msg::json_text({{"error", std::string(text)}}) + "\n";
}

std::pair<int, std::string> dispatcher_failure(const Reply& r) {
  if (!r) return {503, "no answer from the dispatcher"};
  if (const auto* e = std::get_if<msg::Error>(&*r)) {
    std::string text = "dispatcher: " + std::string(msg::to_string(e->code)) + ": " + e->text;
    if (e->code == msg::ErrorCode::kNotFound) return {404, text};
    if (e->code == msg::ErrorCode::kBusy) return {503, text};
    return {502, text};
  }
  return {502, "unexpected reply from the dispatcher"};
}

void JobWaiters::add(uint64_t job_id, const std::shared_ptr<asio::steady_timer>& timer) {
  auto& v = waiting_[job_id];
  std::erase_if(v, [](const auto& w) { return w.expired(); });
  v.push_back(timer);
}

void JobWaiters::wake(uint64_t job_id) {
  auto it = waiting_.find(job_id);
  if (it == waiting_.end()) return;
  auto timers = std::move(it->second);
  waiting_.erase(it);
  for (auto& w : timers) {
    if (auto t = w.lock()) t->cancel();
  }
}

size_t JobWaiters::size() const { return waiting_.size(); }

Context::Context(asio::io_context& io, RequestPool& p)
    : ioc(io), pool(p), hub(std::make_unique<SseHub>(io)) {}

Context::~Context() = default;

Server::Server(asio::io_context& ioc, RequestPool& pool) : ctx_(ioc, pool), acceptor_(ioc), retry_(ioc) {}

Server::~Server() = default;

bool Server::listen(const ListenAddress& a, std::string* err) {
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(a.host, ec), a.port);
  if (!ec) acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *err = "cannot listen on " + a.host + ":" + std::to_string(a.port) + ": " + ec.message();
    return false;
  }
  accept();
  return true;
}

void Server::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      sock.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(ctx_, std::move(sock))->read();
      return accept();
    }
    // Out of descriptors, most likely: accept again once some may be free.
    spdlog::warn("web: accept failed: {}", ec.message());
    retry_.expires_after(std::chrono::milliseconds(100));
    retry_.async_wait([this](auto e) {
      if (!e) accept();
    });
  });
}

void Server::on_snapshot(const msg::Snapshot& s) { ctx_.hub->broadcast(ctx_.model.on_snapshot(s)); }

void Server::on_event(const msg::Event& e) {
  ctx_.hub->broadcast(ctx_.model.on_event(e));
  if (!e.jobs.empty()) ctx_.waiters.wake(e.jobs[0].job_id);
}

void Server::on_interrupted(const std::string& why) {
  spdlog::warn("web: the feed broke ({}); pages resync when it is back", why);
  ctx_.hub->broadcast(ctx_.model.on_interrupted(why));
}

}  // namespace simpleci::web
