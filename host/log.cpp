// log.cpp: leveled stderr logging.
#include "log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace xdpfw::host {
namespace {
LogLevel g_level = LogLevel::info;
// journald reads "<3>message" as priority err; a terminal gets plain text.
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;
}  // namespace

LogLevel parse_log_level(std::string_view s) {
  if (s == "error") return LogLevel::error;
  if (s == "warn" || s == "warning") return LogLevel::warn;
  if (s == "info") return LogLevel::info;
  if (s == "debug") return LogLevel::debug;
  throw std::invalid_argument("'" + std::string(s) +
                              "' is not a log level (expected error, warn, info or debug)");
}

const char* log_level_name(LogLevel l) {
  switch (l) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "?";
}

void set_log_level(LogLevel l) {
  g_level = l;
}
LogLevel log_level() {
  return g_level;
}

void log(LogLevel l, std::string_view msg) {
  if (l > g_level) return;
  static const int priority[] = {3, 4, 6, 7};
  if (g_journal)
    std::fprintf(stderr, "<%d>%.*s\n", priority[static_cast<int>(l)], int(msg.size()), msg.data());
  else
    std::fprintf(stderr, "xdpfw-host: %s: %.*s\n", log_level_name(l), int(msg.size()), msg.data());
}

}  // namespace xdpfw::host
