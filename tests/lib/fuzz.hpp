// A bounded mutation fuzzer for gtest: parsers of hostile input (manifests, registry
// JSON and headers) get random and mutated inputs for a time budget on every CI run.
// BERTH_FUZZ_SECONDS sets the budget (default 3), BERTH_FUZZ_SEED replays a run; a
// failure prints the seed and the input. libFuzzer is not used because Debian's g++
// has no -fsanitize=fuzzer; the loop below is the same idea without coverage feedback.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <typeinfo>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/error.hpp"

namespace berth::fuzz {

class Mutator {
public:
  Mutator(std::vector<std::string> seeds, std::vector<std::string> tokens, uint64_t seed)
      : seeds_(std::move(seeds)), tokens_(std::move(tokens)), rng_(seed) {}

  // One input: a seed with 1 to 8 mutations, or now and then bytes of pure noise.
  std::string next() {
    if (pick(20) == 0) return noise(pick(512));
    std::string s = seeds_[pick(seeds_.size())];
    for (size_t n = 1 + pick(8); n > 0; --n) mutate(s);
    return s;
  }

private:
  size_t pick(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng_) : 0; }

  std::string noise(size_t len) {
    std::string s(len, '\0');
    for (auto& c : s) c = static_cast<char>(pick(256));
    return s;
  }

  void mutate(std::string& s) {
    size_t at = pick(s.size() + 1);
    switch (pick(7)) {
    case 0: // flip a bit
      if (!s.empty()) s[at % s.size()] ^= static_cast<char>(1 << pick(8));
      break;
    case 1: // insert a random byte
      s.insert(at, 1, static_cast<char>(pick(256)));
      break;
    case 2: // delete a run
      s.erase(at, pick(16));
      break;
    case 3: // insert a token of the grammar (braces, quotes, keys, anchors)
      if (!tokens_.empty()) s.insert(at, tokens_[pick(tokens_.size())]);
      break;
    case 4: { // repeat a chunk: deep nesting, long values
      std::string chunk = s.substr(at, 1 + pick(8));
      std::string rep;
      for (size_t n = pick(64); n > 0; --n) rep += chunk;
      s.insert(at, rep);
      break;
    }
    case 5: // truncate
      s.resize(at);
      break;
    default: // splice another seed in
      s.insert(at, seeds_[pick(seeds_.size())].substr(0, pick(256)));
      break;
    }
    if (s.size() > kMaxInput) s.resize(kMaxInput);
  }

  static constexpr size_t kMaxInput = 64 * 1024;
  std::vector<std::string> seeds_, tokens_;
  std::mt19937_64 rng_;
};

inline std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 400)) out += (c >= 0x20 && c < 0x7f) ? std::string(1, c) : fmt::format("\\x{:02x}", c);
  return out;
}

// Runs `target` on mutated inputs for the budget. berth::Error is the only allowed
// failure (the clear error the input deserves); any other exception fails the test.
inline size_t run(const std::vector<std::string>& seeds, const std::vector<std::string>& tokens,
                  const std::function<void(const std::string&)>& target) {
  const char* budget_env = std::getenv("BERTH_FUZZ_SECONDS");
  const char* seed_env = std::getenv("BERTH_FUZZ_SEED");
  double budget = budget_env ? std::atof(budget_env) : 3.0;
  uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : std::random_device{}();
  std::fprintf(stderr, "fuzz: BERTH_FUZZ_SEED=%llu, %.1f s\n", static_cast<unsigned long long>(seed), budget);
  Mutator m(seeds, tokens, seed);
  // A parser that allocates without bound meets bad_alloc here (reported with its input)
  // instead of the OOM killer.
  rlimit saved{};
  ::getrlimit(RLIMIT_AS, &saved);
  rlimit capped = saved;
  capped.rlim_cur = std::min<rlim_t>(saved.rlim_cur, rlim_t{4} << 30);
  ::setrlimit(RLIMIT_AS, &capped);
  struct Restore {
    rlimit r;
    ~Restore() { ::setrlimit(RLIMIT_AS, &r); }
  } restore{saved};
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(budget);
  size_t runs = 0;
  for (; std::chrono::steady_clock::now() < end; ++runs) {
    std::string input = m.next();
    try {
      target(input);
    } catch (const Error&) {
    } catch (const std::exception& e) {
      std::string saved = fmt::format("/tmp/berth-fuzz-{}-{}.bin", seed, runs);
      if (FILE* f = std::fopen(saved.c_str(), "wb")) {
        std::fwrite(input.data(), 1, input.size(), f);
        std::fclose(f);
      }
      ADD_FAILURE() << "BERTH_FUZZ_SEED=" << seed << " run " << runs << ": " << typeid(e).name() << ": " << e.what()
                    << "\ninput (whole in " << saved << "): " << printable(input);
      return runs;
    }
  }
  ::testing::Test::RecordProperty("fuzz_runs", static_cast<int>(runs));
  return runs;
}

} // namespace berth::fuzz
