// berth-shim: the per-container monitor (docs/shim.md, berth-shim(8)).
#include <unistd.h>

#include <cstdio>

#include "common/error.hpp"
#include "common/version.hpp"
#include "shim/lib/client.hpp"
#include "shim/lib/launch.hpp"
#include "shim/lib/options.hpp"

int main(int argc, char** argv) {
  using namespace berth::shim;
  CommandLine cl;
  try {
    cl = parse_command_line(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "berth-shim: %s\n", e.what());
    return 2;
  }
  try {
    switch (cl.kind) {
    case CommandLine::Kind::help:
      std::fputs(usage_text(), stdout);
      return 0;
    case CommandLine::Kind::version:
      std::fputs(berth::version_text("berth-shim").c_str(), stdout);
      return 0;
    case CommandLine::Kind::client:
      return run_client(cl.client);
    case CommandLine::Kind::run:
      return run_shim(cl.shim);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "berth-shim: %s\n", e.what());
    return 1;
  }
  return 1;
}
