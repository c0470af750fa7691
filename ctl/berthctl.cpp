// berthctl: Berth's admin CLI for any CRI v1 endpoint (docs/cri.md, "berthctl").
#include "ctl/lib/cli.hpp"

int main(int argc, char** argv) { return berth::ctl::run(argc, argv); }
