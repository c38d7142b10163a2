// text.hpp: small text helpers of the host's parsers and the plugin's
// grammars (header-only: the plugin includes it too).
#pragma once

#include <string_view>
#include <vector>

namespace xdpfw::host {

// Without leading blanks and trailing blanks or CR.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The words of a line: split on spaces, tabs and carriage returns. The one
// splitter of commands, rules, set commands and state files.
inline std::vector<std::string_view> split_words(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace xdpfw::host
