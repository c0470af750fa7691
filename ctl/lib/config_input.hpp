// Pod and container configs from files, as crictl reads them: JSON or YAML (YAML is turned
// into JSON first), field names as protobuf's JSON mapping has them ("log_directory" or
// "logDirectory"). Unknown fields are errors that name the field.
#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace berth::ctl {

// A file bigger than this is refused: configs are small, and the file is untrusted input.
inline constexpr size_t kMaxConfigFile = 1 << 20;

// Fills `msg` from the file at `path`; throws std::runtime_error "<path>: <problem>".
void load_config(const std::string& path, google::protobuf::Message& msg);
// The same for text already read (`what` names it in errors).
void parse_config(const std::string& text, const std::string& what, google::protobuf::Message& msg);

} // namespace berth::ctl
