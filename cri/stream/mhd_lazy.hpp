// libmicrohttpd through one typed table, loaded with dlopen when the stream server first
// starts (common/lazy_library.hpp). Linking it would map GnuTLS and its chain (~2.5 MiB
// PSS) into berthd for good, while most nodes never exec into a container; berthd starts
// its stream server at the first Exec, Attach or PortForward call instead.
#pragma once

#include <sys/socket.h>

#include <cstdarg>
#include <optional>
#include <string>

#include <microhttpd.h>

#include "common/lazy_library.hpp"

namespace berth::stream {

struct MhdApi {
  MHD_Daemon* (*start_daemon)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void*, MHD_AccessHandlerCallback,
                              void*, ...);
  void (*stop_daemon)(MHD_Daemon*);
  const MHD_DaemonInfo* (*get_daemon_info)(MHD_Daemon*, MHD_DaemonInfoType, ...);
  MHD_Response* (*create_response_from_buffer)(size_t, void*, MHD_ResponseMemoryMode);
  MHD_Response* (*create_response_for_upgrade)(MHD_UpgradeHandler, void*);
  MHD_Result (*add_response_header)(MHD_Response*, const char*, const char*);
  MHD_Result (*queue_response)(MHD_Connection*, unsigned int, MHD_Response*);
  void (*destroy_response)(MHD_Response*);
  int (*get_connection_values)(MHD_Connection*, MHD_ValueKind, MHD_KeyValueIterator, void*);
  const char* (*lookup_connection_value)(MHD_Connection*, MHD_ValueKind, const char*);
  MHD_Result (*upgrade_action)(MHD_UpgradeResponseHandle*, MHD_UpgradeAction, ...);
};

// libmicrohttpd.so.12; never unloaded (GnuTLS's chain holds DF_1_NODELETE members).
class MhdLibrary final : public LazyLibrary<MhdApi> {
public:
  static MhdLibrary& instance();

private:
  MhdLibrary() : LazyLibrary("libmicrohttpd.so.12") {}
  bool bind(std::string& error) override;
};

// An IP address (v4 or v6) and port as MHD_OPTION_SOCK_ADDR takes it; nullopt when `ip`
// is not an IP address. Shared by berthd's two HTTP servers (stream, metrics).
struct SockAddr {
  sockaddr_storage storage{};
  bool v6 = false;
  bool loopback = false;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};
std::optional<SockAddr> sock_addr(const std::string& ip, uint16_t port);

// MHD_OPTION_EXTERNAL_LOGGER for berthd's servers, the server's name as its argument:
// libmicrohttpd's messages in berthd's log, at most one every 10 s (a flood of bad
// connections must not become a flood of log lines).
void mhd_log(void* server_name, const char* format, va_list ap);

} // namespace berth::stream
