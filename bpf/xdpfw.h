/* xdpfw.h: every struct, constant and limit shared by the XDP program
 * (bpf/xdpfw.bpf.c) and user space. Nothing that crosses the boundary is
 * defined anywhere else. Layouts are fixed-width and explicitly padded so that
 * clang -target bpf and g++ agree byte for byte. */
#ifndef XDPFW_H
#define XDPFW_H

#include <linux/types.h>

/* ---- limits (enforced by the user-space compiler, see docs/DATAPATH.md) ---- */
#define XDPFW_MAX_SHAPES	     64	   /* distinct mask shapes per address family */
#define XDPFW_MAX_VLAN_TAGS	     2	   /* 802.1Q / 802.1ad tags walked */
#define XDPFW_MAX_IPV6_EXT	     8	   /* IPv6 extension headers walked */
#define XDPFW_PORT_SPACE	     65536 /* entries per port-class table */
#define XDPFW_SLOTS		     2	   /* double-buffered rule sets */
#define XDPFW_DEFAULT_MAX_RULES	     131072
#define XDPFW_DEFAULT_MAX_ENTRIES    1048576 /* per family hash map, both slots */
#define XDPFW_MAX_EXPANSION_PER_RULE 65536   /* sport classes x dport classes */

enum xdpfw_family {
	XDPFW_FAMILY_V4 = 0,
	XDPFW_FAMILY_V6 = 1,
};

enum xdpfw_action {
	XDPFW_ACTION_PASS = 0,
	XDPFW_ACTION_DROP = 1,
};

/* Which fields of a shape are constrained. Stored in the key's meta byte
 * (bit 0 is the slot) so that two shapes with equal prefix lengths can never
 * produce the same key. */
enum xdpfw_shape_flags {
	XDPFW_SHAPE_PROTO = 1 << 0, /* proto compared */
	XDPFW_SHAPE_L4 = 1 << 1,    /* packet must carry ports / icmp type+code */
	XDPFW_SHAPE_SPORT = 1 << 2, /* sport (icmp type) class compared */
	XDPFW_SHAPE_DPORT = 1 << 3, /* dport (icmp code) class compared */
};

/* port_class map index: ((slot * 2) + field) * XDPFW_PORT_SPACE + port */
enum xdpfw_port_field {
	XDPFW_FIELD_SPORT = 0, /* also ICMP type */
	XDPFW_FIELD_DPORT = 1, /* also ICMP code */
};

/* One mask shape of the tuple space. Masks are in network byte order. */
struct xdpfw_shape {
	__u32 src_mask[4];
	__u32 dst_mask[4];
	__u64 min_order; /* best (priority << 32 | id) of the rules in it */
	__u8 flags;	 /* enum xdpfw_shape_flags */
	__u8 src_plen;
	__u8 dst_plen;
	__u8 pad[5];
};

/* One rule set (one per slot): policies and the shapes to visit, in order
 * of min_order, per family. */
struct xdpfw_ruleset {
	__u64 generation;
	__u8 default_action;   /* enum xdpfw_action: no rule matched */
	__u8 malformed_action; /* enum xdpfw_action: parser could not read the packet */
	__u8 pad[2];
	__u32 nshapes[2]; /* per family */
	__u32 pad2;
	struct xdpfw_shape shapes[2][XDPFW_MAX_SHAPES];
};

/* Hash keys. meta = slot | flags << 1. Ports are classes (see DATAPATH.md). */
struct xdpfw_key4 {
	__u8 meta;
	__u8 proto;
	__u8 src_plen;
	__u8 dst_plen;
	__u16 sport_class;
	__u16 dport_class;
	__u32 src;
	__u32 dst;
};

struct xdpfw_key6 {
	__u8 meta;
	__u8 proto;
	__u8 src_plen;
	__u8 dst_plen;
	__u16 sport_class;
	__u16 dport_class;
	__u32 src[4];
	__u32 dst[4];
};

/* Value of a key: the best rule among those that produce the key. */
struct xdpfw_match {
	__u64 order;	 /* priority << 32 | rule id: lower wins */
	__u32 rule_slot; /* index into rule_counters */
	__u8 action;	 /* enum xdpfw_action */
	__u8 pad[3];
};

/* Global run-time settings (one entry). */
struct xdpfw_config {
	__u32 active_slot;
	__u32 pad;
	__u64 event_cost_ns;  /* per-CPU token cost of one event; 0 = events off */
	__u64 event_burst_ns; /* per-CPU bucket depth */
};

/* Per-CPU token bucket state for events. */
struct xdpfw_event_bucket {
	__u64 credit_ns;
	__u64 last_ns;
};

/* Global per-CPU counters, indexed by enum xdpfw_stat. */
enum xdpfw_stat {
	XDPFW_STAT_PACKETS = 0,
	XDPFW_STAT_BYTES,
	XDPFW_STAT_MATCH_DROP,
	XDPFW_STAT_MATCH_PASS,
	XDPFW_STAT_DEFAULT_DROP,
	XDPFW_STAT_DEFAULT_PASS,
	XDPFW_STAT_MALFORMED_DROP,
	XDPFW_STAT_MALFORMED_PASS,
	XDPFW_STAT_NON_IP,    /* not IPv4/IPv6: always passed */
	XDPFW_STAT_FRAGMENTS, /* non-first fragments seen (no L4) */
	/* malformed reasons: exactly one per malformed packet */
	XDPFW_STAT_BAD_L2,	       /* Ethernet or VLAN header truncated */
	XDPFW_STAT_VLAN_TOO_DEEP,      /* more than XDPFW_MAX_VLAN_TAGS tags */
	XDPFW_STAT_IPV4_TRUNCATED,     /* header or total length beyond the frame */
	XDPFW_STAT_IPV4_BAD_HEADER,    /* version != 4, IHL < 5, total length < IHL */
	XDPFW_STAT_IPV6_TRUNCATED,     /* fixed header or payload length beyond frame */
	XDPFW_STAT_IPV6_BAD_HEADER,    /* version != 6 */
	XDPFW_STAT_IPV6_EXT_TRUNCATED, /* an extension header runs past the payload */
	XDPFW_STAT_IPV6_EXT_TOO_MANY,  /* more than XDPFW_MAX_IPV6_EXT headers */
	XDPFW_STAT_L4_TRUNCATED,       /* TCP/UDP/ICMP header runs past the IP payload */
	XDPFW_STAT_L4_BAD_HEADER,      /* TCP data offset < 5 */
	XDPFW_STAT_EVENTS_SENT,
	XDPFW_STAT_EVENTS_SUPPRESSED, /* over the rate limit */
	XDPFW_STAT_EVENTS_FAILED,     /* perf buffer full or not open */
	XDPFW_STAT_MAX,
};

#define XDPFW_STAT_FIRST_MALFORMED XDPFW_STAT_BAD_L2
#define XDPFW_STAT_LAST_MALFORMED  XDPFW_STAT_L4_BAD_HEADER

struct xdpfw_stats {
	__u64 c[XDPFW_STAT_MAX];
};

struct xdpfw_rule_counters {
	__u64 packets;
	__u64 bytes;
};

/* Event flags */
enum xdpfw_event_flags {
	XDPFW_EVENT_HAS_PORTS = 1 << 0, /* sport/dport valid (icmp: type/code) */
	XDPFW_EVENT_FRAGMENT = 1 << 1,	/* non-first fragment */
};

/* Unmatched-packet event sent through the perf buffer. */
struct xdpfw_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 ifindex;
	__u32 pkt_len;
	__u8 family; /* enum xdpfw_family */
	__u8 proto;
	__u8 tcp_flags;
	__u8 flags;  /* enum xdpfw_event_flags */
	__u16 sport; /* host byte order */
	__u16 dport;
	__u32 src[4]; /* network byte order; IPv4 in src[0] */
	__u32 dst[4];
};

#endif /* XDPFW_H */
