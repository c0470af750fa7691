// berthctl: Berth's admin CLI for any CRI v1 endpoint (docs/cri.md, "berthctl").
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "ctl/lib/cli.hpp"

int main(int argc, char** argv) {
  int rc = berth::ctl::run(argc, argv);
  // Out without gRPC's shutdown (joining its threads costs milliseconds of a short command).
  std::cout.flush();
  std::fflush(nullptr);
  _exit(rc);
}
