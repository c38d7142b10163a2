// utc_time.hpp: the one text form of a time the agent shows (control
// answers, JSON, audit lines): ISO 8601 in UTC, to the second.
#pragma once

#include <ctime>
#include <string>

namespace xdpfw {

inline std::string utc_time(std::time_t seconds) {
  char buf[32];
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace xdpfw
