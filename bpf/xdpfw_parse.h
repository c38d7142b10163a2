/* xdpfw_parse.h: the packet parser. Reads Ethernet (0-2 VLAN tags), IPv4
 * (honouring IHL and fragments), IPv6 (bounded extension-header walk) and the
 * TCP/UDP/ICMP/ICMPv6 header into struct xdpfw_pkt. Returns PARSE_OK,
 * PARSE_NOT_IP, or the enum xdpfw_stat reason of a malformed packet; for a
 * malformed packet whose addresses were read, pkt->readable says what was
 * (enum xdpfw_readable; XDPFW_READ_ALL there means nothing was). */
#ifndef XDPFW_PARSE_H
#define XDPFW_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdpfw.h"

#define PARSE_OK     0
#define PARSE_NOT_IP 1 /* reasons below are enum xdpfw_stat values >= BAD_L2 */

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define IPV6_NEXTHDR_HOP      0
#define IPV6_NEXTHDR_ROUTING  43
#define IPV6_NEXTHDR_FRAGMENT 44
#define IPV6_NEXTHDR_AH	      51
#define IPV6_NEXTHDR_DEST     60
#define IPV4_FRAG_OFFSET_MASK 0x1fff

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_opt_hdr_min {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_frag_hdr_min {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

struct xdpfw_pkt {
	__u32 src[4]; /* network byte order */
	__u32 dst[4];
	__u16 sport; /* host byte order; icmp: type */
	__u16 dport; /* icmp: code */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 has_ports; /* L4 header read: sport/dport valid */
	__u8 fragment;	/* non-first fragment */
	__u8 readable;	/* enum xdpfw_readable */
	__u16 l4_off;	/* where the L4 header starts (has_ports) */
	__u8 mapped;	/* IPv6 source in ::ffff:0:0/96 or ::/96, not :: or ::1 */
};

/* Reads the L4 header at data + off, which must end within data + l3_end. */
static __always_inline int parse_l4(void *data, void *data_end, __u32 off, __u32 l3_end,
				    struct xdpfw_pkt *pkt)
{
	void *l4 = data + off;

	pkt->l4_off = off;
	if (pkt->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || off + sizeof(*th) > l3_end)
			goto truncated;
		if (th->doff < 5) {
			pkt->readable = XDPFW_READ_NO_L4;
			return XDPFW_STAT_L4_BAD_HEADER;
		}
		pkt->sport = bpf_ntohs(th->source);
		pkt->dport = bpf_ntohs(th->dest);
		pkt->tcp_flags = ((__u8 *)th)[13];
		pkt->has_ports = 1;
	} else if (pkt->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end || off + sizeof(*uh) > l3_end)
			goto truncated;
		pkt->sport = bpf_ntohs(uh->source);
		pkt->dport = bpf_ntohs(uh->dest);
		pkt->has_ports = 1;
	} else if (pkt->proto == IPPROTO_ICMP || pkt->proto == IPPROTO_ICMPV6) {
		__u8 *ih = l4;

		/* type, code, checksum */
		if ((void *)(ih + 4) > data_end || off + 4 > l3_end)
			goto truncated;
		pkt->sport = ih[0];
		pkt->dport = ih[1];
		pkt->has_ports = 1;
	}
	return PARSE_OK;
truncated:
	pkt->readable = XDPFW_READ_NO_L4;
	return XDPFW_STAT_L4_TRUNCATED;
}

static __always_inline int parse_ipv4(void *data, void *data_end, __u32 off, struct xdpfw_pkt *pkt)
{
	struct iphdr *iph = data + off;
	__u32 ihl, tot_len;

	if ((void *)(iph + 1) > data_end)
		return XDPFW_STAT_IPV4_TRUNCATED;
	if (iph->version != 4 || iph->ihl < 5)
		return XDPFW_STAT_IPV4_BAD_HEADER;
	ihl = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < ihl)
		return XDPFW_STAT_IPV4_BAD_HEADER;

	pkt->family = XDPFW_FAMILY_V4;
	pkt->proto = iph->protocol;
	pkt->src[0] = iph->saddr;
	pkt->dst[0] = iph->daddr;
	if (data + off + tot_len > data_end) {
		/* the header is whole, the payload cut short */
		pkt->readable = XDPFW_READ_NO_L4;
		return XDPFW_STAT_IPV4_TRUNCATED;
	}
	if (bpf_ntohs(iph->frag_off) & IPV4_FRAG_OFFSET_MASK) {
		pkt->fragment = 1; /* no L4 header in this packet */
		return PARSE_OK;
	}
	return parse_l4(data, data_end, off + ihl, off + tot_len, pkt);
}

static __always_inline int parse_ipv6(void *data, void *data_end, __u32 off, struct xdpfw_pkt *pkt)
{
	struct ipv6hdr *ip6h = data + off;
	__u32 l3_end;
	__u8 nexthdr;
	int i;

	if ((void *)(ip6h + 1) > data_end)
		return XDPFW_STAT_IPV6_TRUNCATED;
	if (ip6h->version != 6)
		return XDPFW_STAT_IPV6_BAD_HEADER;
	pkt->family = XDPFW_FAMILY_V6;
	__builtin_memcpy(pkt->src, &ip6h->saddr, 16);
	__builtin_memcpy(pkt->dst, &ip6h->daddr, 16);
	/* IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d) source;
	 * not :: (duplicate address detection) nor ::1 (loopback). Word
	 * compares only: the caller decides (docs/DATAPATH.md, "IPv4
	 * addresses in IPv6 sources"). */
	if (!(pkt->src[0] | pkt->src[1]) &&
	    (pkt->src[2] == bpf_htonl(0xffff) || (!pkt->src[2] && (pkt->src[3] & ~bpf_htonl(1)))))
		pkt->mapped = 1;
	/* from here on, a malformed packet has its addresses only: the
	 * upper-layer protocol is at the end of the extension headers */
	pkt->readable = XDPFW_READ_NO_PROTO;
	l3_end = off + sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
	if (data + l3_end > data_end)
		return XDPFW_STAT_IPV6_TRUNCATED;
	nexthdr = ip6h->nexthdr;
	off += sizeof(*ip6h);

#pragma clang loop unroll(disable)
	for (i = 0; i < XDPFW_MAX_IPV6_EXT + 1; i++) {
		struct ipv6_opt_hdr_min *oh;
		__u32 len;

		if (nexthdr != IPV6_NEXTHDR_HOP && nexthdr != IPV6_NEXTHDR_ROUTING &&
		    nexthdr != IPV6_NEXTHDR_DEST && nexthdr != IPV6_NEXTHDR_FRAGMENT &&
		    nexthdr != IPV6_NEXTHDR_AH) {
			pkt->proto = nexthdr;
			pkt->readable = XDPFW_READ_ALL;
			return parse_l4(data, data_end, off, l3_end, pkt);
		}
		if (i == XDPFW_MAX_IPV6_EXT)
			return XDPFW_STAT_IPV6_EXT_TOO_MANY;

		off &= 0xffff; /* keeps the offset provably bounded for the verifier */
		oh = data + off;
		if (nexthdr == IPV6_NEXTHDR_FRAGMENT) {
			struct ipv6_frag_hdr_min *fh = data + off;

			if ((void *)(fh + 1) > data_end || off + sizeof(*fh) > l3_end)
				return XDPFW_STAT_IPV6_EXT_TRUNCATED;
			if (bpf_ntohs(fh->frag_off) & ~7) {
				pkt->proto = fh->nexthdr;
				pkt->fragment = 1;
				pkt->readable = XDPFW_READ_ALL;
				return PARSE_OK;
			}
			nexthdr = fh->nexthdr;
			off += sizeof(*fh);
			continue;
		}
		if ((void *)(oh + 1) > data_end)
			return XDPFW_STAT_IPV6_EXT_TRUNCATED;
		if (nexthdr == IPV6_NEXTHDR_AH)
			len = ((__u32)oh->hdrlen + 2) * 4;
		else
			len = ((__u32)oh->hdrlen + 1) * 8;
		if (off + len > l3_end)
			return XDPFW_STAT_IPV6_EXT_TRUNCATED;
		nexthdr = oh->nexthdr;
		off += len;
	}
	return XDPFW_STAT_IPV6_EXT_TOO_MANY;
}

static __always_inline int parse_packet(void *data, void *data_end, struct xdpfw_pkt *pkt)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return XDPFW_STAT_BAD_L2;
	proto = eth->h_proto;

#pragma clang loop unroll(full)
	for (i = 0; i < XDPFW_MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vh = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return XDPFW_STAT_BAD_L2;
		proto = vh->encap_proto;
		off += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return XDPFW_STAT_VLAN_TOO_DEEP;

	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, data_end, off, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, data_end, off, pkt);
	return PARSE_NOT_IP;
}

#endif /* XDPFW_PARSE_H */
