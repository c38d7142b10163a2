// log.hpp: the host's diagnostics on stderr, with levels. Under systemd the
// "<N>" prefix gives journald the priority.
#pragma once

#include <string>
#include <string_view>

namespace xdpfw::host {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

LogLevel parse_log_level(std::string_view s);  // throws std::invalid_argument
const char* log_level_name(LogLevel l);

void set_log_level(LogLevel l);
LogLevel log_level();
void log(LogLevel l, std::string_view msg);
inline void log_error(std::string_view m) {
  log(LogLevel::error, m);
}
inline void log_warn(std::string_view m) {
  log(LogLevel::warn, m);
}
inline void log_info(std::string_view m) {
  log(LogLevel::info, m);
}
inline void log_debug(std::string_view m) {
  log(LogLevel::debug, m);
}

}  // namespace xdpfw::host
