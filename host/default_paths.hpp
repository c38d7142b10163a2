// default_paths.hpp: where the agent and its client meet when nothing says
// otherwise (xdpfw-host's [host] socket, xdpfw-ctl's --socket). Header-only,
// for xdpfw-ctl.
#pragma once

namespace xdpfw {

inline constexpr const char* default_socket_path = "/run/xdpfw/xdpfw.sock";

}  // namespace xdpfw
