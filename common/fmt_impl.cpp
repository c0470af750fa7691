// fmt's compiled part, built once for the whole project. Without FMT_HEADER_ONLY each
// file that formats declares these functions instead of compiling and optimising them
// again: about a third of every file's compile time. Linked statically (through
// common_lib), so no binary maps libfmt.so.
#include <fmt/format.h>
#include <fmt/format-inl.h>

#include <locale>

FMT_BEGIN_NAMESPACE
namespace detail {
// The templates format.h declares but only format-inl.h defines.
template auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
template locale_ref::locale_ref(const std::locale& loc);
template auto locale_ref::get<std::locale>() const -> std::locale;
template auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template auto decimal_point_impl(locale_ref) -> char;
} // namespace detail
FMT_END_NAMESPACE
