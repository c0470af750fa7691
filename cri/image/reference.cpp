#include "cri/image/reference.hpp"

#include <cctype>

#include "common/error.hpp"
#include "cri/image/image_store.hpp"
#include "cri/image/untrusted.hpp"

namespace berth::image {
namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !is_lower_alnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" || sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// Host[:port]: labels of letters, digits and '-', or a bracketed IPv6 address.
bool valid_domain(std::string_view d) {
  if (d.empty()) return false;
  std::string_view host = d;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    host = d.substr(0, close + 1);
    d.remove_prefix(close + 1);
    if (!d.empty() && d.front() != ':') return false;
  } else {
    size_t colon = d.find(':');
    host = d.substr(0, colon);
    d = colon == std::string_view::npos ? std::string_view{} : d.substr(colon);
    if (host.empty()) return false;
    for (char c : host)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  }
  if (!d.empty()) {  // ":port"
    d.remove_prefix(1);
    if (d.empty() || d.size() > 5 || d.find_first_not_of("0123456789") != std::string_view::npos) return false;
  }
  return true;
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t)
    if (!(word(c) || c == '.' || c == '-')) return false;
  return true;
}

} // namespace

bool is_sha256_digest(std::string_view s) {
  if (s.size() != 71 || s.substr(0, 7) != "sha256:") return false;
  for (char c : s.substr(7))
    if (!is_hex(c)) return false;
  return true;
}

std::string Reference::str() const {
  std::string s = name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Reference parse_reference(std::string_view input) {
  auto bad = [&](std::string_view why) -> Reference {
    fail_code(EINVAL, "invalid image reference {}: {}", excerpt(input, 256), why);
  };
  if (input.empty()) return bad("empty");
  if (input.size() > 4096) return bad("too long");
  Reference ref;
  std::string_view rest = input;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (ref.digest.starts_with("sha256:") ? !is_sha256_digest(ref.digest) : true)
      return bad("digest must be sha256:<64 lowercase hex>");
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!valid_tag(ref.tag)) return bad("invalid tag");
  }
  if (rest.empty()) return bad("missing repository name");
  if (rest.size() == 64 && rest.find_first_not_of("0123456789abcdef") == std::string_view::npos)
    return bad("a 64-character hex string is an image ID, not a repository name");
  size_t first_slash = rest.find('/');
  std::string_view first = rest.substr(0, first_slash);
  bool has_domain = first_slash != std::string_view::npos &&
                    (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
                     first.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos);
  std::string_view path = rest;
  if (has_domain) {
    if (!valid_domain(first)) return bad("invalid registry host");
    ref.domain = std::string(first);
    path = rest.substr(first_slash + 1);
  } else {
    ref.domain = "docker.io";
  }
  if (ref.domain == "index.docker.io") ref.domain = "docker.io";
  size_t start = 0;
  int components = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view comp = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!valid_component(comp))
      return bad(comp.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos
                     ? "repository name must be lowercase"
                     : "invalid repository name component");
    ++components;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  ref.path = std::string(path);
  if (ref.domain == "docker.io" && components == 1) ref.path = "library/" + ref.path;
  if (ref.name().size() > 255) return bad("repository name longer than 255 characters");
  if (!ref.digest.empty()) ref.tag.clear();
  else if (ref.tag.empty()) ref.tag = "latest";
  return ref;
}

std::string normalize_reference(std::string_view ref) { return parse_reference(ref).str(); }

} // namespace berth::image
