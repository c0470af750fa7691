// libmicrohttpd through one typed table, loaded with dlopen when the stream server first
// starts (common/lazy_library.hpp). Linking it would map GnuTLS and its chain (~2.5 MiB
// PSS) into berthd for good, while most nodes never exec into a container; berthd starts
// its stream server at the first Exec, Attach or PortForward call instead.
#pragma once

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

} // namespace berth::stream
