#include "cri/stream/mhd_lazy.hpp"

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

} // namespace berth::stream
