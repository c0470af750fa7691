#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "agent/lib/backoff.hpp"
#include "agent/lib/probe.hpp"
#include "agent/lib/status_server.hpp"
#include "common/fd.hpp"

using namespace berth::agent;
using namespace std::chrono_literals;

TEST(Backoff, DoublesToTheMaximumAndResetsAfterTenMinutes) {
  Backoff b;
  auto t = Backoff::Clock::time_point{} + 1000s;
  EXPECT_FALSE(b.in_backoff_since("c", t, t));
  std::vector<int> waits;
  for (int i = 0; i < 7; i++) {
    b.next("c", t);
    waits.push_back(static_cast<int>(b.current("c", t).count() / 1000));
  }
  EXPECT_EQ(waits, (std::vector<int>{10, 20, 40, 80, 160, 300, 300}));
  EXPECT_TRUE(b.in_backoff_since("c", t, t + 299s));
  EXPECT_EQ(b.last_update("c"), t);
  EXPECT_EQ(b.release_time("c", t), t + 300s);
  EXPECT_FALSE(b.in_backoff_since("c", t, t + 301s));
  // untouched for more than 2 * 300 s: back to 10 s
  b.next("c", t + 601s);
  EXPECT_EQ(b.current("c", t + 601s), 10000ms);
  b.gc(t + 1300s);
  EXPECT_EQ(b.current("c", t + 1300s), 0ms);
}

TEST(ProbeTracker, ThresholdsAndInitialResults) {
  Probe p;
  p.failure_threshold = 3;
  p.success_threshold = 2;
  p.period_seconds = 5;
  p.initial_delay_seconds = 7;
  auto t0 = ProbeTracker::Clock::time_point{} + 100s;
  ProbeTracker readiness(ProbeKind::readiness, p, t0);
  EXPECT_EQ(readiness.result(), ProbeResult::failure);
  EXPECT_FALSE(readiness.due(t0 + 6s));
  EXPECT_TRUE(readiness.due(t0 + 7s));
  EXPECT_FALSE(readiness.record(ProbeResult::success, t0 + 7s)); // 1 of 2
  EXPECT_EQ(readiness.next_run(), t0 + 12s);
  EXPECT_TRUE(readiness.record(ProbeResult::success, t0 + 12s)); // 2 of 2: ready
  EXPECT_EQ(readiness.result(), ProbeResult::success);
  EXPECT_FALSE(readiness.record(ProbeResult::failure, t0 + 17s));
  EXPECT_FALSE(readiness.record(ProbeResult::success, t0 + 22s)); // run broken
  EXPECT_FALSE(readiness.record(ProbeResult::failure, t0 + 27s));
  EXPECT_FALSE(readiness.record(ProbeResult::failure, t0 + 32s));
  EXPECT_TRUE(readiness.record(ProbeResult::failure, t0 + 37s)); // 3 in a row
  ProbeTracker liveness(ProbeKind::liveness, Probe{}, t0);
  EXPECT_EQ(liveness.result(), ProbeResult::success);
  ProbeTracker startup(ProbeKind::startup, Probe{}, t0);
  EXPECT_EQ(startup.result(), ProbeResult::unknown);
}

namespace {
int listen_tcp(berth::UniqueFd& fd) {
  fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd.get(), 4) != 0) return -1;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}
} // namespace

TEST(ProbeRunners, TcpSocket) {
  berth::UniqueFd l;
  int port = listen_tcp(l);
  ASSERT_GT(port, 0);
  EXPECT_EQ(run_tcp_socket("127.0.0.1", port, 1000ms).result, ProbeResult::success);
  l.reset();
  auto closed = run_tcp_socket("127.0.0.1", port, 1000ms);
  EXPECT_EQ(closed.result, ProbeResult::failure);
  EXPECT_NE(closed.message.find("connection refused"), std::string::npos) << closed.message;
}

TEST(ProbeRunners, HttpGetAgainstTheStatusEndpoint) {
  StatusStore store;
  StatusServer server(store, "127.0.0.1", 0);
  HttpGetAction a;
  a.port = server.port();
  a.path = "/pods"; // /healthz is 503 here: no runtime was ever seen
  EXPECT_EQ(run_http_get(a, "127.0.0.1", 2000ms).result, ProbeResult::success);
  a.path = "/missing";
  auto r = run_http_get(a, "127.0.0.1", 2000ms);
  EXPECT_EQ(r.result, ProbeResult::failure);
  EXPECT_EQ(r.message, "HTTP probe failed with statuscode: 404");
}

TEST(ProbeRunners, GrpcHealth) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  grpc::CallbackGenericService no_other_service; // the callback API needs no polled queue
  builder.RegisterCallbackGenericService(&no_other_service);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  EXPECT_EQ(run_grpc("127.0.0.1", port, "", 2000ms).result, ProbeResult::success);
  server->GetHealthCheckService()->SetServingStatus("svc", false);
  auto r = run_grpc("127.0.0.1", port, "svc", 2000ms);
  EXPECT_EQ(r.result, ProbeResult::failure);
  EXPECT_NE(r.message.find("status 2"), std::string::npos) << r.message;
  server->Shutdown();
}
