// conntrack.hpp: what ct rules need of the kernel. The XDP program asks the
// kernel's connection tracking through the bpf_xdp_ct_lookup kfunc (Linux
// 6.0+, nf_conntrack built in or loaded), and the kernel tracks connections
// in a network namespace only once something there asks it to (an nftables
// or iptables rule that uses conntrack): the agent asks with one nftables
// table of its own (docs/DATAPATH.md, "ct").
#pragma once

#include <string>

namespace xdpfw {

// "" when this kernel offers the kfunc; else why ct rules cannot be used,
// e.g. "this kernel has no bpf_xdp_ct_lookup (needs Linux 6.0+ with
// nf_conntrack built in or loaded)".
std::string conntrack_unavailable();

// The table that makes the kernel track connections in this network
// namespace: created if missing (idempotent), never removed by the agent.
inline constexpr const char* conntrack_table = "inet xdpfw_conntrack";

// Creates conntrack_table with /usr/sbin/nft. Throws std::runtime_error
// saying why when it cannot.
void enable_conntrack();

}  // namespace xdpfw
