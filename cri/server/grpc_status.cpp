#include "cri/server/grpc_status.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/daemon_log.hpp"

namespace berth::cri {
namespace {

constexpr size_t kMaxMessage = 16 << 10;  // far below gRPC's metadata limits

grpc::StatusCode code_for(int err) {
  switch (err) {
  case EINVAL: return grpc::StatusCode::INVALID_ARGUMENT;
  case ENOENT: return grpc::StatusCode::NOT_FOUND;
  case EEXIST: return grpc::StatusCode::ALREADY_EXISTS;
  case kWrongState: return grpc::StatusCode::FAILED_PRECONDITION;
  case EACCES:
  case EPERM: return grpc::StatusCode::PERMISSION_DENIED;
  case ECANCELED: return grpc::StatusCode::CANCELLED;
  case ETIMEDOUT: return grpc::StatusCode::DEADLINE_EXCEEDED;
  case ENOTSUP: return grpc::StatusCode::UNIMPLEMENTED;
  case ENOSPC: return grpc::StatusCode::RESOURCE_EXHAUSTED;
  default: return grpc::StatusCode::UNKNOWN;
  }
}

// The errno of a classification error (a bad field, a name taken, a wrong state) only
// picks the gRPC code: its strerror text ("invalid argument") would add nothing.
bool errno_is_only_a_code(const Error& e) {
  switch (e.code()) {
  case EINVAL:
  case EEXIST:
  case kWrongState:
  case ENOTSUP:
  case ETIMEDOUT: return true;
  case ENOENT: return e.message().find("not found") != std::string::npos;
  default: return false;
  }
}

} // namespace

grpc::Status status_from(const std::exception& e, std::string_view call) {
  auto* be = dynamic_cast<const Error*>(&e);
  std::string msg = fmt::format("{}: {}", call, be && errno_is_only_a_code(*be) ? be->message() : e.what());
  if (msg.size() > kMaxMessage) {
    msg.resize(kMaxMessage);
    msg += "... (truncated)";
  }
  auto code = be ? code_for(be->code()) : grpc::StatusCode::UNKNOWN;
  // Bad requests are the client's business: a warning, not an error of ours.
  if (code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::NOT_FOUND ||
      code == grpc::StatusCode::ALREADY_EXISTS || code == grpc::StatusCode::FAILED_PRECONDITION)
    dlog::warn(call, {{"error", msg}});
  else
    dlog::error(call, {{"error", msg}});
  return grpc::Status(code, msg);
}

} // namespace berth::cri
