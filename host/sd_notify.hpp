// sd_notify.hpp: readiness for systemd (Type=notify) without libsystemd: a
// datagram to $NOTIFY_SOCKET. Does nothing when not run by systemd.
#pragma once

#include <string_view>

namespace xdpfw::host {
void sd_notify(std::string_view state);
}
