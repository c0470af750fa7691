// berth::Error -> gRPC status, one mapping for every service of berthd. The errno says
// what kind of failure it was; the message (with its context chain) is what the
// kubelet shows in the pod's events, bounded so that a hostile input echoed in an error
// can never make the reply itself fail.
#pragma once

#include <exception>
#include <string_view>

#include <grpcpp/support/status.h>

namespace berth::cri {

// errno values the handlers use for CRI outcomes that POSIX has no better name for.
inline constexpr int kWrongState = EBUSY;  // FAILED_PRECONDITION: not in a state that allows the call

// EINVAL -> INVALID_ARGUMENT, ENOENT -> NOT_FOUND, EEXIST -> ALREADY_EXISTS,
// EBUSY -> FAILED_PRECONDITION, EACCES/EPERM -> PERMISSION_DENIED, ECANCELED -> CANCELLED,
// ETIMEDOUT -> DEADLINE_EXCEEDED, ENOTSUP -> UNIMPLEMENTED, ENOSPC -> RESOURCE_EXHAUSTED,
// anything else UNKNOWN.
// Logs the error (call = the RPC name).
grpc::Status status_from(const std::exception& e, std::string_view call);

// Runs fn (which returns grpc::Status) and turns any exception into a status.
template <typename Fn>
grpc::Status guarded(std::string_view call, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return status_from(e, call);
  }
}

} // namespace berth::cri
