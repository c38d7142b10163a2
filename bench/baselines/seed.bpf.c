// SPDX-License-Identifier: GPL-2.0
/* seed.bpf.c: the original design: the seed XDP firewall (with a `manager`
 * CLI, now xdpfw-ctl) that this project grew from, built as its design
 * document describes, as a baseline: an exact 5-tuple hash key (IPv4 only, L4 read at iph + 1), one
 * shared counter per rule bumped atomically, one perf event per unmatched
 * packet. Its defects are the point of comparison: do not fix them here. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct seed_key {
	__u32 src_ip;
	__u32 dst_ip;
	__u16 src_port;
	__u16 dst_port;
	__u8 proto;
	__u8 pad[3];
};

struct seed_rule {
	__u32 action; /* 1 drop */
	__u64 hits;
};

struct seed_event {
	__u32 src_ip, dst_ip;
	__u16 src_port, dst_port;
	__u8 proto, tcp_flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct seed_key);
	__type(value, struct seed_rule);
} seed_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} seed_events SEC(".maps");

SEC("xdp")
int seed_main(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct seed_key key = {};
	struct seed_event ev = {};
	struct seed_rule *r;
	struct iphdr *iph;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	key.src_ip = iph->saddr;
	key.dst_ip = iph->daddr;
	key.proto = iph->protocol;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(iph + 1);

		if ((void *)(th + 1) > data_end)
			return XDP_PASS;
		key.src_port = th->source;
		key.dst_port = th->dest;
		ev.tcp_flags = ((__u8 *)th)[13];
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);

		if ((void *)(uh + 1) > data_end)
			return XDP_PASS;
		key.src_port = uh->source;
		key.dst_port = uh->dest;
	}
	r = bpf_map_lookup_elem(&seed_rules, &key);
	if (r) {
		__sync_fetch_and_add(&r->hits, 1);
		return r->action == 1 ? XDP_DROP : XDP_PASS;
	}
	ev.src_ip = key.src_ip;
	ev.dst_ip = key.dst_ip;
	ev.src_port = key.src_port;
	ev.dst_port = key.dst_port;
	ev.proto = key.proto;
	bpf_perf_event_output(ctx, &seed_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
