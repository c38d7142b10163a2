// config_fuzz: the INI reader, the [host] keys and the firewall's
// [plugin.xdpfw] keys, as SIGHUP and --check-config read them. Any input is
// either a config or a ConfigError/runtime_error naming FILE:LINE.
#include <cstdint>
#include <string>

#include "firewall_config.hpp"
#include "host_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto sections = xdpfw::host::parse_ini("fuzz.conf", text);
    for (const auto& s : sections) {
      if (s.name == "host") {
        xdpfw::host::HostConfig cfg;
        try {
          xdpfw::host::apply_host_section(cfg, "fuzz.conf", s);
        } catch (const std::runtime_error&) {
        }
      } else {
        std::vector<xdpfw::ConfigLine> lines;
        for (const auto& e : s.entries) lines.push_back({e.key, e.value, e.line});
        try {
          xdpfw::FirewallConfig fc = xdpfw::parse_firewall_config("fuzz.conf", lines);
          (void)fc.selects("eth0");
        } catch (const std::runtime_error&) {
        }
      }
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
