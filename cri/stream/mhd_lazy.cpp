#include "cri/stream/mhd_lazy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "common/daemon_log.hpp"
#include "common/fs.hpp"

namespace berth::stream {

MhdLibrary& MhdLibrary::instance() {
  static MhdLibrary* lib = new MhdLibrary();  // never destroyed: the server may outlive statics
  return *lib;
}

bool MhdLibrary::bind(std::string& error) {
  sym("MHD_start_daemon", api_.start_daemon, error);
  sym("MHD_stop_daemon", api_.stop_daemon, error);
  sym("MHD_get_daemon_info", api_.get_daemon_info, error);
  sym("MHD_create_response_from_buffer", api_.create_response_from_buffer, error);
  sym("MHD_create_response_for_upgrade", api_.create_response_for_upgrade, error);
  sym("MHD_add_response_header", api_.add_response_header, error);
  sym("MHD_queue_response", api_.queue_response, error);
  sym("MHD_destroy_response", api_.destroy_response, error);
  sym("MHD_get_connection_values", api_.get_connection_values, error);
  sym("MHD_lookup_connection_value", api_.lookup_connection_value, error);
  sym("MHD_upgrade_action", api_.upgrade_action, error);
  return error.empty();
}

std::optional<SockAddr> sock_addr(const std::string& ip, uint16_t port) {
  SockAddr out;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, ip.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    out.loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    return out;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    out.v6 = true;
    out.loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    return out;
  }
  return std::nullopt;
}

void mhd_log(void* server_name, const char* format, va_list ap) {
  static std::mutex mu;
  static std::chrono::steady_clock::time_point last{};
  char buf[512];
  std::vsnprintf(buf, sizeof buf, format, ap);
  std::lock_guard lk(mu);
  auto now = std::chrono::steady_clock::now();
  if (last != std::chrono::steady_clock::time_point{} && now - last < std::chrono::seconds(10)) return;
  last = now;
  dlog::warn(server_name ? static_cast<const char*>(server_name) : "http server", {{"error", trim(buf)}});
}

} // namespace berth::stream
