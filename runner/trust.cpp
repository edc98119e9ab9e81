#include "runner/trust.h"

#include <sys/stat.h>

#include <filesystem>

#include "net/endpoint.h"

namespace simpleci::runner {

namespace {
constexpr std::string_view kIpc = "ipc://";
}

bool private_socket_dir(const std::string& path, uid_t uid, std::string* why) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    *why = "cannot inspect " + dir;
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    *why = dir + " is not a folder";
    return false;
  }
  if (st.st_uid != uid && st.st_uid != 0) {
    *why = dir + " belongs to uid " + std::to_string(st.st_uid) + ", not this runner's " + std::to_string(uid);
    return false;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    *why = dir + " is writable by other users";
    return false;
  }
  return true;
}

DispatcherTrust judge_dispatcher(const std::string& endpoint, bool curve, uid_t uid) {
  if (curve) return {true, "CURVE with the dispatcher's key pinned"};
  if (endpoint.starts_with(kIpc)) {
    std::string why;
    if (private_socket_dir(endpoint.substr(kIpc.size()), uid, &why)) return {true, "a private ipc:// socket"};
    return {false, "ipc:// socket in a shared folder: " + why};
  }
  return {false, "plain-text TCP: anyone who answers on " + endpoint + " could send it"};
}

bool plain_text_to_another_machine(const std::string& endpoint, bool curve) {
  return !curve && !endpoint.starts_with(kIpc) && !is_loopback_endpoint(endpoint);
}

std::string refuse_plain_text(const std::string& endpoint, bool curve, bool insecure) {
  if (insecure || !plain_text_to_another_machine(endpoint, curve)) return "";
  return "refusing plain-text connection to " + endpoint +
         " (anyone on the path could answer and read results); use --curve-server-key/"
         "--curve-secret-key, or --insecure";
}

}  // namespace simpleci::runner
