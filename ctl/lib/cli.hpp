// berthctl's command line (CLI11): crictl's verbs and flags where they overlap.
// Exit codes: 0 ok, 1 an RPC or runtime error (printed with the gRPC code), 2 usage.
#pragma once

namespace berth::ctl {
int run(int argc, char** argv);
}
