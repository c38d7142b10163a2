// rule_fuzz: the rule grammar. Any input either parses or is refused with a
// RuleError; what parses formats to text that parses back to the same rule,
// and a rules file (many lines) parses or names its bad line.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rule.hpp"
#include "rules_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    xdpfw::Rule r = xdpfw::parse_rule(text);
    std::string canonical = xdpfw::format_rule(r);
    if (!(xdpfw::parse_rule(canonical) == r)) std::abort();  // the round trip lost something
  } catch (const xdpfw::RuleError&) {
  }
  try {
    auto rules = xdpfw::parse_rules_text("fuzz", text);
    for (const auto& r : rules)
      if (!(xdpfw::parse_rule(xdpfw::format_rule(r)) == r)) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
