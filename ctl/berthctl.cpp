// berthctl: Berth's admin CLI for any CRI v1 endpoint (docs/cri.md, "berthctl").
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "ctl/lib/cli.hpp"

int main(int argc, char** argv) {
  // One malloc arena: each of gRPC's threads would otherwise map and fault in a heap of
  // its own, a quarter of a short command's CPU time.
  mallopt(M_ARENA_MAX, 1);
  int rc = berth::ctl::run(argc, argv);
  // Out without gRPC's shutdown (joining its threads costs milliseconds of a short command).
  std::cout.flush();
  std::fflush(nullptr);
  _exit(rc);
}
