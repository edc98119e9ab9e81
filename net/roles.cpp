#include "net/roles.h"

#include <array>

#include "messages/messages.h"

namespace simpleci {

namespace {

namespace sb = msg::sent_by;

// Which messages a role may send is its bit in each type's row of msg::kMessageTypes (sent_by).
struct RoleInfo {
  Role role;
  std::string_view name, folder;
  uint8_t sender_bits;  // msg::sent_by bits this role's keys count as
};
constexpr std::array<RoleInfo, 5> kRoles = {{
    {Role::kAny, "any", "", sb::kRunner | sb::kObserver | sb::kClient | sb::kAdmin},
    {Role::kRunner, "runner", "runners", sb::kRunner},
    {Role::kObserver, "observer", "observers", sb::kObserver},
    {Role::kClient, "client", "clients", sb::kClient},
    {Role::kAdmin, "admin", "admins", sb::kAdmin},
}};

const RoleInfo& info(Role r) { return kRoles[static_cast<size_t>(r)]; }

// The sent_by bits of a wire type; 0 for an unknown one.
uint8_t senders(uint8_t type) {
  const msg::TypeInfo* t = msg::type_info(type);
  return t ? t->sent_by : sb::kNoPeer;
}

}  // namespace

std::string_view to_string(Role r) { return info(r).name; }

std::string_view folder_of(Role r) { return info(r).folder; }

std::optional<Role> role_from_folder(std::string_view folder) {
  for (const auto& i : kRoles) {
    if (!i.folder.empty() && i.folder == folder) return i.role;
  }
  return std::nullopt;
}

bool peer_sendable(uint8_t type) { return senders(type) != sb::kNoPeer; }

bool role_allows(Role r, uint8_t type) {
  return !peer_sendable(type) || (info(r).sender_bits & senders(type)) != 0;
}

}  // namespace simpleci
