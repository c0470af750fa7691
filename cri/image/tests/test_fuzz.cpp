// The registry client's parsers of hostile input get random and mutated inputs for a
// bounded time on every run (tests/lib/fuzz.hpp): manifests, indexes and configs (JSON
// from any registry a pod names), WWW-Authenticate challenges, image references. Each
// may refuse an input with berth::Error, nothing else.
#include <gtest/gtest.h>

#include "cri/image/manifest.hpp"
#include "cri/image/reference.hpp"
#include "cri/image/registry_client.hpp"
#include "cri/image/untrusted.hpp"
#include "tests/lib/fuzz.hpp"

namespace berth::image {
namespace {

const std::string kDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const std::vector<std::string> kJsonSeeds = {
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        kDigest + R"(","size":123},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
        kDigest + R"(","size":456,"annotations":{"a":"b"}}]})",
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
        kDigest + R"(","size":7,"platform":{"architecture":"amd64","os":"linux","variant":"v8"}}]})",
    R"({"architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/bin"],"Entrypoint":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[")" +
        kDigest + R"("]},"history":[{"created_by":"x"}]})",
};
const std::vector<std::string> kJsonTokens = {"{", "}", "[", "]", ",", ":", "\"", "\\u0000", "\\ud800", "null", "true",
                                              "1e400", "-0", "\"diff_ids\":", "\"layers\":", "\"size\":", "\xff",
                                              "\"mediaType\":", "\"digest\":\"sha256:", "18446744073709551616"};

TEST(RegistryFuzz, ManifestsIndexesAndConfigsAreParsedOrRefusedWithAnError) {
  size_t runs = fuzz::run(kJsonSeeds, kJsonTokens, [](const std::string& body) {
    (void)manifest_media_type("application/json", body);
    (void)parse_manifest(body);
  });
  runs += fuzz::run(kJsonSeeds, kJsonTokens, [](const std::string& body) { (void)parse_index(body); });
  runs += fuzz::run(kJsonSeeds, kJsonTokens, [](const std::string& body) {
    auto ids = config_diff_ids(body);
    (void)config_user(body);
    (void)chain_ids(ids);
  });
  EXPECT_GT(runs, 300u);
}

TEST(RegistryFuzz, ChallengesAndReferencesAreParsedOrRefusedWithAnError) {
  size_t runs = fuzz::run(
      {R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull")",
       R"(Basic realm="x", Bearer realm="y" , error="insufficient_scope")"},
      {",", "=", "\"", "\\", " ", "\t", "realm=", "Bearer ", "\r\n", "\x7f"},
      [](const std::string& header) { (void)parse_challenge(header); });
  runs += fuzz::run({"docker.io/library/busybox:latest", "127.0.0.1:5000/a/b@" + kDigest, "busybox"},
                    {"/", ":", "@", "sha256:", ".", "-", "_", "..", "A", "[::1]"},
                    [](const std::string& ref) { (void)parse_reference(ref); });
  EXPECT_GT(runs, 200u);
}

// Found by the fuzzer: a schemaVersion that is not a number escaped as nlohmann's
// type_error instead of a clear error.
TEST(RegistryFuzz, SchemaVersionOfTheWrongTypeIsAClearError) {
  EXPECT_THROW(parse_manifest(R"({"schemaVersion":"2","config":{},"layers":[]})"), Error);
  EXPECT_EQ(manifest_media_type("", R"({"schemaVersion":"1"})"), "");
}

} // namespace
} // namespace berth::image
