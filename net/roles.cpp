#include "net/roles.h"

#include <array>

#include "messages/messages.h"

namespace simpleci {

namespace {

using msg::MessageType;

static_assert(msg::kMaxMessageType < 32, "role sets are bit masks of message types");
constexpr uint32_t bit(uint8_t type) { return type < 32 ? uint32_t{1} << type : 0; }
constexpr uint32_t bit(MessageType t) { return bit(static_cast<uint8_t>(t)); }

constexpr uint32_t kRunnerSet = bit(MessageType::kRegister) | bit(MessageType::kHeartbeat) |
                                bit(MessageType::kOutput) | bit(MessageType::kResult) |
                                bit(MessageType::kDrain);
constexpr uint32_t kReadSet = bit(MessageType::kStatusRequest) | bit(MessageType::kResultsRequest) |
                              bit(MessageType::kWatchRequest);
constexpr uint32_t kObserverSet = kReadSet | bit(MessageType::kCommit);
constexpr uint32_t kAdminSet = kObserverSet | bit(MessageType::kCancelRequest) |
                               bit(MessageType::kRetryRequest) | bit(MessageType::kPruneRequest);
constexpr uint32_t kSendable = kRunnerSet | kAdminSet;

struct RoleInfo {
  Role role;
  std::string_view name, folder;
  uint32_t allowed;
};
constexpr std::array<RoleInfo, 5> kRoles = {{
    {Role::kAny, "any", "", kSendable},
    {Role::kRunner, "runner", "runners", kRunnerSet},
    {Role::kObserver, "observer", "observers", kObserverSet},
    {Role::kClient, "client", "clients", kReadSet},
    {Role::kAdmin, "admin", "admins", kAdminSet},
}};

const RoleInfo& info(Role r) { return kRoles[static_cast<size_t>(r)]; }

}  // namespace

std::string_view to_string(Role r) { return info(r).name; }

std::string_view folder_of(Role r) { return info(r).folder; }

std::optional<Role> role_from_folder(std::string_view folder) {
  for (const auto& i : kRoles) {
    if (!i.folder.empty() && i.folder == folder) return i.role;
  }
  return std::nullopt;
}

bool peer_sendable(uint8_t type) { return (kSendable & bit(type)) != 0; }

bool role_allows(Role r, uint8_t type) {
  return !peer_sendable(type) || (info(r).allowed & bit(type)) != 0;
}

}  // namespace simpleci
