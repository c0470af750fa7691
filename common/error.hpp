// One error type for all of Berth: an errno (0 when none applies) and a message
// that grows a context chain as it travels up ("create container: mount proc on
// /proc: permission denied"), in the spirit of crun's libcrun_error_t.
#pragma once

#include <cerrno>
#include <exception>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace berth {

class Error : public std::exception {
public:
  Error(int err, std::string msg) : errno_(err), msg_(std::move(msg)) { render(); }

  int code() const noexcept { return errno_; }
  // The message without the strerror suffix.
  const std::string& message() const noexcept { return msg_; }
  // Message plus ": <strerror>" when an errno is set.
  const char* what() const noexcept override { return full_.c_str(); }

  // Prefix context: "while doing X: <original>".
  Error& wrap(std::string_view context) {
    msg_ = fmt::format("{}: {}", context, msg_);
    render();
    return *this;
  }

private:
  void render();
  int errno_;
  std::string msg_;
  std::string full_;
};

// A command line the program cannot run (unknown flag, bad flag value): main prints it
// and exits 2, as getopt tools do; 1 means the program ran and failed.
class UsageError : public Error {
public:
  explicit UsageError(std::string msg) : Error(0, std::move(msg)) {}
};

template <typename... Args>
[[noreturn]] void fail_usage(fmt::format_string<Args...> f, Args&&... args) {
  throw UsageError(fmt::format(f, std::forward<Args>(args)...));
}

// Throw an Error with no errno.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(0, fmt::format(f, std::forward<Args>(args)...));
}

// Throw an Error carrying the current errno.
template <typename... Args>
[[noreturn]] void fail_errno(fmt::format_string<Args...> f, Args&&... args) {
  int saved = errno;
  throw Error(saved, fmt::format(f, std::forward<Args>(args)...));
}

// Throw an Error with an explicit errno.
template <typename... Args>
[[noreturn]] void fail_code(int err, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(err, fmt::format(f, std::forward<Args>(args)...));
}

// Run fn(); if it throws an Error, prefix the context and rethrow.
template <typename Fn>
decltype(auto) with_context(std::string_view context, Fn&& fn) {
  try {
    return fn();
  } catch (Error& e) {
    e.wrap(context);
    throw;
  }
}

} // namespace berth
