// kernel_parts.hpp: the firewall's parts in the running kernel, apart
// from the service so that its unit tests need neither root nor bpffs.
#pragma once

#include "firewall_config.hpp"
#include "firewall_service.hpp"

namespace xdpfw {

// The kernel's parts for cfg: the log folder checked, bpffs mounted where it
// is missing, the pin folders locked, the program loaded (its maps resumed
// from the pins), and an attacher of bpf_links. Throws with a message for
// the operator.
FirewallParts kernel_parts(const FirewallConfig& cfg);

}  // namespace xdpfw
