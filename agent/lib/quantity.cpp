#include "agent/lib/quantity.hpp"

#include <cmath>
#include <utility>

#include "common/error.hpp"

namespace berth::agent {
namespace {

// Returns the suffix's multiplier as (base, exponent): 2^10k or 10^k.
std::pair<int, int> suffix_scale(std::string_view s, std::string_view whole) {
  static const std::pair<std::string_view, std::pair<int, int>> table[] = {
      {"", {10, 0}},    {"n", {10, -9}},  {"u", {10, -6}},  {"m", {10, -3}},  {"k", {10, 3}},
      {"M", {10, 6}},   {"G", {10, 9}},   {"T", {10, 12}},  {"P", {10, 15}},  {"E", {10, 18}},
      {"Ki", {2, 10}},  {"Mi", {2, 20}},  {"Gi", {2, 30}},  {"Ti", {2, 40}},  {"Pi", {2, 50}},
      {"Ei", {2, 60}}};
  for (auto& [name, scale] : table)
    if (s == name) return scale;
  if (s.size() >= 2 && (s[0] == 'e' || s[0] == 'E')) {
    int exp = 0;
    size_t i = 1;
    bool neg = false;
    if (s[i] == '+' || s[i] == '-') neg = s[i++] == '-';
    if (i == s.size()) fail("quantity {:?}: bad exponent", whole);
    for (; i < s.size(); i++) {
      if (s[i] < '0' || s[i] > '9' || exp > 100) fail("quantity {:?}: bad exponent", whole);
      exp = exp * 10 + (s[i] - '0');
    }
    return {10, neg ? -exp : exp};
  }
  fail("quantity {:?}: unknown suffix {:?}", whole, s);
}

long double parse_number(std::string_view text) {
  if (text.empty()) fail("quantity: empty");
  size_t i = 0;
  bool neg = false;
  if (text[0] == '+' || text[0] == '-') neg = text[i++] == '-';
  long double whole = 0, frac = 0, scale = 1;
  bool digits = false, dot = false;
  for (; i < text.size(); i++) {
    char c = text[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    digits = true;
    if (dot) {
      scale /= 10;
      frac += (c - '0') * scale;
    } else {
      whole = whole * 10 + (c - '0');
    }
  }
  if (!digits) fail("quantity {:?}: no digits", text);
  auto [base, exp] = suffix_scale(text.substr(i), text);
  long double v = (whole + frac) * std::pow(static_cast<long double>(base), exp);
  if (v > 9.2e18L) fail("quantity {:?}: too large", text);
  return neg ? -v : v;
}

int64_t round_up(long double v) {
  // Quantities round towards +inf; the small epsilon absorbs binary noise of "0.1"-style input.
  return static_cast<int64_t>(std::ceil(v - 1e-9L));
}

} // namespace

int64_t parse_quantity_milli(std::string_view text) { return round_up(parse_number(text) * 1000); }
int64_t parse_quantity(std::string_view text) { return round_up(parse_number(text)); }

} // namespace berth::agent
