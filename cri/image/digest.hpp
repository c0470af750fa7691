// Incremental SHA-256 (OpenSSL EVP) producing OCI digests "sha256:<hex>".
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace berth::image {

class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // "sha256:<64 hex>"; the hasher is reset afterwards.
  std::string digest();

private:
  struct CtxFree {
    void operator()(evp_md_ctx_st* c) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxFree> ctx_;
};

std::string sha256_digest(std::string_view data);
// "sha256:abc..." -> "abc..." (the caller has validated the digest).
inline std::string_view digest_hex(std::string_view digest) { return digest.substr(7); }

} // namespace berth::image
