// Whom the runner believes. Over plain TCP anyone who answers on the dispatcher's endpoint can
// send JOB, so a shell command that arrived on the wire is run only when the dispatcher is
// authenticated; otherwise the runner runs its own --test-command (PROTOCOL.md, "Decisions").
#pragma once

#include <sys/types.h>

#include <string>

namespace simpleci::runner {

struct DispatcherTrust {
  bool authenticated = false;  // may the JOB's test_command be run?
  std::string why;             // for the log: what made it so
};

// The dispatcher at endpoint is authenticated when CURVE is on (its public key is pinned with
// --curve-server-key, so only the holder of the secret key can answer), or when the endpoint is
// ipc://PATH and PATH's folder is private to uid (see private_socket_dir).
DispatcherTrust judge_dispatcher(const std::string& endpoint, bool curve, uid_t uid);

// True when the folder holding the socket at path is owned by uid or root and neither group
// nor others may write to it, so that no other user can have put a socket there. Otherwise
// false with *why naming the folder and the problem.
bool private_socket_dir(const std::string& path, uid_t uid, std::string* why);

// True for plain text (no CURVE) to a tcp:// host that is not loopback; ipc:// is local.
bool plain_text_to_another_machine(const std::string& endpoint, bool curve);

// Such a connection without --insecure is refused: "" when the runner may connect, else the
// one-line reason.
std::string refuse_plain_text(const std::string& endpoint, bool curve, bool insecure);

}  // namespace simpleci::runner
