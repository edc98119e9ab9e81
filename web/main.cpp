// simpleci-web: flags, logging and signals; the server is in server.cpp, the feed in
// feed_thread.cpp.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "app/component.h"
#include "common/fsutil.h"
#include "common/signals.h"
#include "net/endpoint.h"
#include "web/feed_thread.h"
#include "web/server.h"

using namespace simpleci;

namespace {

constexpr std::string_view kProgram = "simpleci-web";

struct Flags {
  cli::ConnectFlags conn;
  std::string listen = "127.0.0.1:8080", address_file;
  int64_t workers = 4;
  web::ListenAddress addr;
};

// Reads signals from the component's signal fd on the I/O thread; any of them stops the server.
void on_signals(boost::asio::posix::stream_descriptor& sd, boost::asio::io_context& ioc, int fd) {
  sd.async_wait(boost::asio::posix::stream_descriptor::wait_read, [&sd, &ioc, fd](auto ec) {
    if (ec) return;
    int sig = read_signal(fd);
    if (sig == 0) return on_signals(sd, ioc, fd);
    spdlog::info("web: signal {}, stopping", sig);
    ioc.stop();
  });
}

int run_main(int argc, char** argv) {
  app::Component c(std::string(kProgram),
                   "simpleCI web: dashboard, JSON API, server-sent events, badges and Prometheus metrics",
                   "web.log");
  Flags f;
  f.conn.add(c.flags(), "simpleci-web");
  c.flags().add_option("--listen", f.listen, "HOST:PORT to serve HTTP on ([IPv6]:PORT; port 0: the OS picks)");
  c.flags().add_option("--address-file", f.address_file, "write the HOST:PORT served on to this file once listening");
  c.add_ranged("--workers", f.workers, "threads that send requests to the dispatcher", 1, 64);
  cli::Dispatcher d;
  auto check = [&]() -> app::Stop {
    std::string err;
    auto a = web::parse_listen(f.listen, &err);
    if (!a) return c.fail("--listen: " + err, cli::kUsageError);
    f.addr = *a;
    return f.conn.resolve(c.program(), &d);
  };
  if (auto stop = c.parse(argc, argv, check)) return *stop;
  if (auto stop = c.start("web")) return *stop;

  boost::asio::io_context ioc(1);
  zmq::context_t zctx(1);
  web::Post post = [&ioc](std::function<void()> fn) { boost::asio::post(ioc, std::move(fn)); };
  web::RequestPool pool(zctx, d, post, static_cast<int>(f.workers));
  web::Server server(ioc, pool);
  std::string err;
  if (!server.listen(f.addr, &err)) return c.fail(err, cli::kRuntimeError);
  auto ep = server.local_endpoint();
  std::string where = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                                           : ep.address().to_string() + ":" + std::to_string(ep.port());
  if (!f.address_file.empty() && !write_file_atomic(f.address_file, where + "\n", false, &err)) {
    return c.fail("--address-file: " + err, cli::kRuntimeError);
  }
  spdlog::info("web: serving http://{} for the dispatcher at {}", where, d.endpoint);

  net::FeedOptions fo;
  fo.endpoint = d.endpoint;
  fo.server_key = d.server_key;
  fo.secret_key = d.secret_key;
  web::FeedThread feed(zctx, fo, post, server);
  feed.start();
  boost::asio::posix::stream_descriptor sd(ioc, c.signal_fd());
  on_signals(sd, ioc, c.signal_fd());
  ioc.run();
  sd.release();  // the component closes its signal fd
  feed.stop();
  pool.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main("simpleci-web", run_main, argc, argv); }
