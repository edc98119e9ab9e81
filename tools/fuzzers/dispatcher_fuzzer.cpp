// Fuzzes the dispatcher's message handling: each input is a sequence of records
// [control byte][length byte][body bytes...] delivered to a fresh Dispatcher (in-memory store,
// FakeClock, an outbox that drops everything). The control byte picks the sending peer and may
// advance the clock past the heartbeat deadline or close a connection. Before the input, runner
// "p1" is registered and holds job 1, so results, cancels and requeues have something to hit.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"
#include "dispatcher/store.h"
#include "messages/codec.h"

using namespace simpleci;

namespace {

class NullOutbox : public dispatcher::Outbox {
 public:
  bool send(std::string_view, const msg::Message& m) override {
    if (!msg::validate(m).empty()) std::abort();  // the dispatcher never sends an invalid message
    return true;
  }
};

const std::filesystem::path& results_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("simpleci-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    spdlog::set_level(spdlog::level::off);
    return d;
  }();
  return dir;
}

void deliver(dispatcher::Dispatcher& d, const std::string& peer, int fd, std::string_view body) {
  const std::string h = msg::header_frame();
  std::vector<std::string_view> frames = {h, body};
  d.on_message(peer, fd, frames);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FakeClock clock;
  dispatcher::Store store;
  std::string err;
  if (!store.open(":memory:", &err)) std::abort();
  NullOutbox out;
  dispatcher::Config cfg;
  cfg.heartbeat_ms = 100;
  cfg.results_dir = results_dir();
  dispatcher::Dispatcher d(clock, store, out, cfg);
  if (!d.recover(&err)) std::abort();
  deliver(d, "p1", 11, msg::encode(msg::Register{"p1", 2, {}}));
  deliver(d, "p2", 12, msg::encode(msg::Commit{1, std::string(40, 'a'), "main", false}));
  d.flush();

  size_t i = 0;
  while (i + 2 <= size) {
    uint8_t ctl = data[i];
    size_t len = std::min<size_t>(data[i + 1], size - i - 2);
    std::string_view body(reinterpret_cast<const char*>(data + i + 2), len);
    i += 2 + len;
    std::string peer = "p" + std::to_string(ctl & 3);
    if (ctl & 0x40) {
      clock.advance(Millis(400));
      d.tick();
    }
    if (ctl & 0x80) d.on_disconnect(10 + (ctl & 3));
    if (ctl & 0x20) {  // a raw frame list instead of header + body
      std::vector<std::string_view> frames = {body};
      d.on_message(peer, 10 + (ctl & 3), frames);
    } else {
      deliver(d, peer, 10 + (ctl & 3), body);
    }
    d.flush();
  }
  d.tick();
  d.flush();
  return 0;
}
