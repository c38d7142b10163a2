// SPDX-License-Identifier: GPL-2.0
/* gen_tx.bpf.c: the traffic generator of the end-to-end benchmarks. Run by
 * BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the sending veth, it
 * sends every frame it is given out of that veth again (XDP_TX), so the
 * kernel itself produces the load, without sockets or a user-space loop. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int gen_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
