// text.hpp: small text helpers of the host's parsers.
#pragma once

#include <string_view>

namespace xdpfw::host {

// Without leading blanks and trailing blanks or CR.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace xdpfw::host
