#include "net/reply_budget.h"

namespace simpleci::net {

ReplyBudget::ReplyBudget(ReplyLimits limits)
    : limits_(limits), totals_(std::make_shared<Totals>()) {}

const ReplyBudget::Account* ReplyBudget::find(std::string_view peer) const {
  auto it = peers_.find(std::string(peer));
  return it == peers_.end() ? nullptr : it->second.get();
}

ReplyBudget::Verdict ReplyBudget::admit(std::string_view peer, size_t bytes, bool carries_output,
                                        bool with_slack) const {
  const Account* a = find(peer);
  const size_t mine = a ? a->bytes.load(std::memory_order_relaxed) : 0;
  if (carries_output && a && a->outputs.load(std::memory_order_relaxed) > 0) {
    return Verdict::kOutputInFlight;
  }
  const size_t extra = with_slack ? limits_.slack : 0;
  // A peer with nothing in flight may always get one reply (every reply fits the per-peer
  // budget); the total cap still holds.
  if (mine > 0 && mine + bytes > limits_.per_peer + extra) return Verdict::kOverBudget;
  if (total_bytes() + bytes > limits_.total + extra) return Verdict::kOverBudget;
  return Verdict::kSend;
}

std::shared_ptr<ReplyBudget::Charge> ReplyBudget::charge(std::string_view peer, size_t bytes,
                                                         bool carries_output) {
  if (peers_.size() >= sweep_at_) {
    sweep();
    sweep_at_ = std::max<size_t>(64, 2 * peers_.size());
  }
  auto& slot = peers_[std::string(peer)];
  if (!slot) slot = std::make_shared<Account>();
  return std::make_shared<Charge>(slot, totals_, bytes, carries_output);
}

bool ReplyBudget::output_in_flight(std::string_view peer) const {
  const Account* a = find(peer);
  return a && a->outputs.load(std::memory_order_relaxed) > 0;
}

size_t ReplyBudget::peer_bytes(std::string_view peer) const {
  const Account* a = find(peer);
  return a ? a->bytes.load(std::memory_order_relaxed) : 0;
}

void ReplyBudget::sweep() {
  // use_count 1: no charge holds the account, so nothing of the peer's is in flight, and only
  // this thread could make a new charge.
  std::erase_if(peers_, [](const auto& p) { return p.second.use_count() == 1; });
}

ReplyBudget::Charge::Charge(std::shared_ptr<Account> a, std::shared_ptr<Totals> t, size_t bytes,
                            bool output)
    : account_(std::move(a)), totals_(std::move(t)), bytes_(bytes), output_(output) {
  account_->bytes.fetch_add(bytes_, std::memory_order_relaxed);
  if (output_) account_->outputs.fetch_add(1, std::memory_order_relaxed);
  totals_->bytes.fetch_add(bytes_, std::memory_order_relaxed);
}

ReplyBudget::Charge::~Charge() {
  account_->bytes.fetch_sub(bytes_, std::memory_order_relaxed);
  if (output_) account_->outputs.fetch_sub(1, std::memory_order_relaxed);
  totals_->bytes.fetch_sub(bytes_, std::memory_order_relaxed);
}

// The three lists are the rows of msg::kMessageTypes (output, budgeted, request_id).

bool carries_output(const msg::Message& m) {
  return std::visit(
      [](const auto& v) {
        const auto output = msg::row_of<std::decay_t<decltype(v)>>().output;
        return output != nullptr && !(v.*output).empty();
      },
      m);
}

bool budgeted(const msg::Message& m) { return msg::info_of(m).budgeted; }

std::optional<uint64_t> reply_request_id(const msg::Message& m) {
  return std::visit(
      [](const auto& v) -> std::optional<uint64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (msg::row_of<T>().info.request_id == msg::RequestId::kEchoes) {
          return v.request_id;
        } else {
          return std::nullopt;
        }
      },
      m);
}

}  // namespace simpleci::net
