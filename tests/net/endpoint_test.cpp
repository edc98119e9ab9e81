#include "net/endpoint.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace simpleci {
namespace {

TEST(Endpoint, ConnectAcceptsHostsAndPorts) {
  std::string err;
  EXPECT_EQ(parse_connect_endpoint("tcp://127.0.0.1:8888", &err), "tcp://127.0.0.1:8888");
  EXPECT_EQ(parse_connect_endpoint("tcp://ci.example:1", &err), "tcp://ci.example:1");
  EXPECT_EQ(parse_connect_endpoint("tcp://[::1]:9", &err), "tcp://[::1]:9");
}

TEST(Endpoint, ConnectRejectsWithOneClearLine) {
  std::string err;
  EXPECT_EQ(parse_connect_endpoint("127.0.0.1:8888", &err), "");
  EXPECT_EQ(err, "endpoint must look like tcp://HOST:PORT or ipc://PATH, got '127.0.0.1:8888'");
  EXPECT_EQ(parse_connect_endpoint("tcp://h:0", &err), "");
  EXPECT_EQ(err, "bad port '0' in endpoint 'tcp://h:0' (want 1-65535)");
  EXPECT_EQ(parse_connect_endpoint("tcp://h:70000", &err), "");
  EXPECT_EQ(parse_connect_endpoint("tcp://h:", &err), "");
  EXPECT_EQ(parse_connect_endpoint("tcp://h b:1", &err), "");
  EXPECT_EQ(parse_connect_endpoint("tcp://[zz]:1", &err), "");
}

TEST(Endpoint, BindAllowsOsChosenPort) {
  std::string err;
  EXPECT_EQ(parse_bind_endpoint("tcp://127.0.0.1:0", &err), "tcp://127.0.0.1:*");
  EXPECT_EQ(parse_bind_endpoint("tcp://*:8888", &err), "tcp://*:8888");
}

TEST(Endpoint, OriginalHostPortSpelling) {
  std::string err;
  EXPECT_EQ(endpoint_from_host_port("localhost:8888", &err), "tcp://localhost:8888");
  EXPECT_EQ(endpoint_from_host_port("localhost", &err), "");
  EXPECT_EQ(err, "--dispatcher-server must be HOST:PORT, got 'localhost'");
}

TEST(Endpoint, ResolveDispatcherFlags) {
  std::string err;
  EXPECT_EQ(resolve_dispatcher("", "", &err), "tcp://127.0.0.1:8888");
  EXPECT_EQ(resolve_dispatcher("", "h:1", &err), "tcp://h:1");
  EXPECT_EQ(resolve_dispatcher("tcp://a:1", "h:1", &err), "");
}

TEST(Endpoint, Loopback) {
  EXPECT_TRUE(is_loopback_endpoint("tcp://127.0.0.1:1"));
  EXPECT_TRUE(is_loopback_endpoint("tcp://127.5.0.1:1"));
  EXPECT_TRUE(is_loopback_endpoint("tcp://localhost:1"));
  EXPECT_TRUE(is_loopback_endpoint("tcp://[::1]:1"));
  EXPECT_FALSE(is_loopback_endpoint("tcp://*:1"));
  EXPECT_FALSE(is_loopback_endpoint("tcp://0.0.0.0:1"));
  EXPECT_FALSE(is_loopback_endpoint("tcp://10.0.0.1:1"));
}

TEST(Endpoint, IpcSocketPaths) {
  std::string err;
  EXPECT_EQ(parse_connect_endpoint("ipc:///run/simpleci/d.sock", &err), "ipc:///run/simpleci/d.sock");
  EXPECT_EQ(parse_bind_endpoint("ipc://run/d.sock", &err), "ipc://run/d.sock");
  EXPECT_EQ(resolve_dispatcher("ipc:///tmp/s/d.sock", "", &err), "ipc:///tmp/s/d.sock");
  EXPECT_EQ(ipc_path("ipc:///tmp/s/d.sock"), "/tmp/s/d.sock");
  EXPECT_EQ(ipc_path("tcp://127.0.0.1:1"), "");
  EXPECT_TRUE(is_loopback_endpoint("ipc:///tmp/s/d.sock"));

  for (const std::string& bad : std::vector<std::string>{"ipc://", "ipc://*", "ipc:///tmp/dir/", "ipc:///tmp/a\nb",
                                "ipc:///" + std::string(kMaxIpcPath, 'x')}) {
    EXPECT_EQ(parse_bind_endpoint(bad, &err), "") << bad;
    EXPECT_EQ(err, "ipc endpoint must be ipc://PATH with a socket file path of 1-107 printable "
                   "bytes, got '" + bad + "'");
  }
}

}  // namespace
}  // namespace simpleci
