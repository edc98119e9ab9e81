// Roles under CURVE: which messages a peer may send the dispatcher, by the folder its key is in.
//
// `--authorized-keys DIR` reads DIR/runners/, DIR/observers/, DIR/clients/ and DIR/admins/; the
// folder a NAME.pub is in gives that key its one role. Keys directly in DIR (the layout from
// before roles) get kAny: every message, as before. Which types a role may send is written in
// the table of message types (messages/messages.h, each row's sent_by); PROTOCOL.md ("Identity
// under CURVE") lists the same; change both together.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace simpleci {

enum class Role : uint8_t {
  kAny,       // key directly in DIR: roles are not in force for it
  kRunner,    // REGISTER, HEARTBEAT, OUTPUT, RESULT, DRAIN (sent_by::kRunner)
  kObserver,  // COMMIT, OBSERVER_HELLO, the read-only requests and NOTIFY (sent_by::kObserver)
  kClient,    // STATUS_REQUEST, RESULTS_REQUEST, WATCH_REQUEST, NOTIFY (sent_by::kClient)
  kAdmin,     // the client's, COMMIT, OBSERVER_HELLO, CANCEL_REQUEST, RETRY_REQUEST, PRUNE_REQUEST
};

// "any", "runner", "observer", "client", "admin".
std::string_view to_string(Role r);

// The folder under DIR holding keys of role r ("runners", ...); "" for kAny.
std::string_view folder_of(Role r);

// The role whose folder is named folder; nullopt for any other name.
std::optional<Role> role_from_folder(std::string_view folder);

// Message types (wire values) that some role may send the dispatcher (a sent_by other than
// kNoPeer): the runner messages and the requests. Others (WELCOME, ERROR, ...) are no question of role; the dispatcher refuses
// them as unexpected whoever sends them.
bool peer_sendable(uint8_t type);

// Whether a key of role r may send a message of this type. True for every type that is not
// peer_sendable, and for kAny.
bool role_allows(Role r, uint8_t type);

}  // namespace simpleci
