/* xdpfw.h: every struct, constant and limit shared by the XDP program
 * (bpf/xdpfw.bpf.c) and user space. Nothing that crosses the boundary is
 * defined anywhere else. Layouts are fixed-width and explicitly padded so that
 * clang -target bpf and g++ agree byte for byte. */
#ifndef XDPFW_H
#define XDPFW_H

#include <linux/types.h>

/* ---- limits (enforced by the user-space compiler, see docs/DATAPATH.md) ---- */
#define XDPFW_MAX_TABLES	128 /* TupleMerge tables per address family */
#define XDPFW_MASK_WORDS	2   /* u64 words of a table bitmask (XDPFW_MAX_TABLES / 64) */
#define XDPFW_BUCKET_SIZE	16  /* candidate rules per hash bucket */
#define XDPFW_MAX_CHAIN		256 /* buckets chained under one key (more rules than one holds) */
#define XDPFW_MAX_VLAN_TAGS	2   /* 802.1Q / 802.1ad tags walked */
#define XDPFW_MAX_IPV6_EXT	8   /* IPv6 extension headers walked */
#define XDPFW_SUMMARY_SPACE	65536 /* entries per summary field */
#define XDPFW_SLOTS		2     /* double-buffered rule sets */
#define XDPFW_VIEWS		3 /* per slot: the rule set, and as two kinds of malformed packet see it */
#define XDPFW_DEFAULT_MAX_RULES 131072
#define XDPFW_DEFAULT_MAX_ENTRIES                                                                  \
	(XDPFW_SLOTS * 2 * XDPFW_DEFAULT_MAX_RULES) /* buckets per family map (views included) */
#define XDPFW_MAX_SETS		   1024		    /* address sets: ids 1 to 1023 */
#define XDPFW_DEFAULT_SET_ELEMENTS 2097152	    /* elements of all sets together (xdpfw_sets) */

enum xdpfw_family {
	XDPFW_FAMILY_V4 = 0,
	XDPFW_FAMILY_V6 = 1,
};

/* What a packet's headers let the parser read (docs/DATAPATH.md, "Parser").
 * A malformed packet whose addresses were read is classified in the view of
 * the rule set blind to what it lacks: view 1 (no ports, ICMP type/code) or
 * view 2 (no protocol either). A rule that needs an unreadable field and
 * whose readable ones match gives the packet the malformed action. */
enum xdpfw_readable {
	XDPFW_READ_ALL = 0,
	XDPFW_READ_NO_L4 = 1,	 /* addresses and protocol */
	XDPFW_READ_NO_PROTO = 2, /* addresses only */
};

enum xdpfw_action {
	XDPFW_ACTION_PASS = 0,
	XDPFW_ACTION_DROP = 1,
	XDPFW_ACTION_AUDIT = 2, /* counted and reported as "would drop"; never decides */
};

/* Connection states of a ct rule (bits of xdpfw_cand.ct). */
enum xdpfw_ct_state {
	XDPFW_CT_NEW = 1 << 0,
	XDPFW_CT_ESTABLISHED = 1 << 1,
	XDPFW_CT_RELATED = 1 << 2,
};

/* The fields a table hashes, beyond its two prefix lengths. */
enum xdpfw_table_flags {
	XDPFW_TABLE_PROTO = 1 << 0, /* proto in the key */
	XDPFW_TABLE_SPORT = 1 << 1, /* exact sport (icmp type) in the key */
	XDPFW_TABLE_DPORT = 1 << 2, /* exact dport (icmp code) in the key */
};

/* What a candidate rule constrains, checked in the bucket scan. A u16 since
 * layout 6: bits 9-15 are free. */
enum xdpfw_cand_flags {
	XDPFW_CAND_PROTO = 1 << 0,	 /* proto compared */
	XDPFW_CAND_L4 = 1 << 1,		 /* packet must carry ports (icmp: type/code) */
	XDPFW_CAND_TCP_FLAGS = 1 << 2,	 /* (tcp_flags & tcp_mask) == tcp_set (with L4) */
	XDPFW_CAND_CT = 1 << 3,		 /* connection state in ct (with L4) */
	XDPFW_CAND_RATE = 1 << 4,	 /* decides only over its rate (xdpfw_rate) */
	XDPFW_CAND_LOG = 1 << 5,	 /* its verdicts are reported as events */
	XDPFW_CAND_SET = 1 << 6,	 /* an address in a set (set_src, set_dst) */
	XDPFW_CAND_SET_NEG_SRC = 1 << 7, /* src !@NAME: the source must not be in set_src */
	XDPFW_CAND_SET_NEG_DST = 1 << 8, /* dst !@NAME */
};

/* What a malformed packet cannot be checked against: its L4 header. */
#define XDPFW_CAND_NEEDS_L4 (XDPFW_CAND_L4 | XDPFW_CAND_TCP_FLAGS | XDPFW_CAND_CT)

/* Summary fields: per packet, one array read each gives the tables that
 * could hold a match (their bits ANDed with the proto mask of the header). */
enum xdpfw_summary_field {
	XDPFW_SUMMARY_DPORT = 0, /* dport (icmp code) */
	XDPFW_SUMMARY_SRC = 1,	 /* IPv4: address bits 0-15; IPv6: bits 32-47 */
	XDPFW_SUMMARY_DST = 2,
	XDPFW_SUMMARY_FIELDS = 3,
};

/* xdpfw_summary index: ((slot * 2 + family) * XDPFW_SUMMARY_FIELDS + field)
 * * XDPFW_SUMMARY_SPACE + value */

/* A set of tables of one family: bit i = table i. */
struct xdpfw_tmask {
	__u64 w[XDPFW_MASK_WORDS];
};

/* One TupleMerge table: a rule sits in it when its prefixes are at least as
 * long as the table's and it names every field the table hashes. Masks are in
 * network byte order. */
struct xdpfw_table {
	__u32 src_mask[4];
	__u32 dst_mask[4];
	__u64 min_order;  /* best (priority << 32 | id) of the rules in it */
	__u16 sport_mask; /* 0xffff when hashed, else 0 (no branches per key) */
	__u16 dport_mask;
	__u8 proto_mask;
	__u8 flags;    /* enum xdpfw_table_flags */
	__u8 src_plen; /* the lengths hashed (user space: which rules it admits) */
	__u8 dst_plen;
};

/* One rule set (one per slot and view: xdpfw_rulesets index and key slot
 * field slot + XDPFW_SLOTS * view; views have no summaries). Tables of a family are sorted by
 * min_order; table i is bit i of every mask and the table id in its keys. */
struct xdpfw_ruleset {
	__u64 generation;
	__u8 default_action;   /* enum xdpfw_action: no rule matched */
	__u8 malformed_action; /* enum xdpfw_action: parser could not read the packet */
	__u8 summaries[2];     /* per family: bit f = summary field f is worth reading */
	__u32 ntables[2];      /* per family */
	__u8 ct[2];	       /* per family: a rule has ct (look the packet up) */
	__u8 conditioned;      /* a rule has ct, rate or action audit */
	/* enum xdpfw_action for an IPv4-mapped or -compatible IPv6 source,
	 * before any rule (docs/DATAPATH.md); was a pad: 0 (pass) in old pins */
	__u8 mapped_action;
	/* Per family and summary field read (summaries): the block of
	 * xdpfw_summary holding its XDPFW_SUMMARY_SPACE masks. Blocks are
	 * allocated to the fields in use, not per slot (layout 6). */
	__u16 summary_block[2][XDPFW_SUMMARY_FIELDS];
	__u32 pad;
	struct xdpfw_tmask noport[2];	  /* tables holding a rule that needs no ports */
	struct xdpfw_tmask proto[2][256]; /* tables that may match this protocol */
	struct xdpfw_table tables[2][XDPFW_MAX_TABLES];
};

/* Hash keys of the bucket maps: fields masked to the table's shape. */
struct xdpfw_key4 {
	__u8 slot;
	__u8 table;
	__u8 proto;
	__u8 chain; /* link of a bucket chain: 0, then 1, 2, ... while "more" */
	__u16 sport;
	__u16 dport;
	__u32 src;
	__u32 dst;
};

struct xdpfw_key6 {
	__u8 slot;
	__u8 table;
	__u8 proto;
	__u8 chain; /* link of a bucket chain: 0, then 1, 2, ... while "more" */
	__u16 sport;
	__u16 dport;
	__u32 src[4];
	__u32 dst[4];
};

/* The rules that share one key of one table, best (priority, id) first:
 * indexes into xdpfw_cands. When more than XDPFW_BUCKET_SIZE rules agree on
 * every hashed field, the list goes on in the bucket of the same key with
 * chain + 1. */
struct xdpfw_bucket {
	__u8 n;
	__u8 more; /* the next link exists */
	__u8 pad[2];
	__u32 cand[XDPFW_BUCKET_SIZE];
};

/* One rule as the bucket scan checks it. xdpfw_cands index:
 * slot * max_rules + counter (the rule's xdpfw_rule_counters index). */
struct xdpfw_cand {
	__u64 order; /* priority << 32 | rule id: lower wins */
	__u32 src[4];
	__u32 src_mask[4];
	__u32 dst[4];
	__u32 dst_mask[4];
	__u16 sport_lo, sport_hi; /* icmp: type */
	__u16 dport_lo, dport_hi; /* icmp: code */
	__u32 counter;
	__u16 flags; /* enum xdpfw_cand_flags */
	__u8 proto;
	__u8 action; /* enum xdpfw_action */
	__u8 tcp_set;
	__u8 tcp_mask;
	__u8 ct; /* enum xdpfw_ct_state bits */
	__u8
	    rate_plen; /* rate per source prefix of this length (IPv4: at most 32); 0: one bucket */
	__u16 set_src; /* address sets (xdpfw_set_tags index); 0: none */
	__u16 set_dst;
	__u64 rate_cost_ns;  /* credit one packet takes */
	__u64 rate_burst_ns; /* bucket depth */
};

/* Token buckets of rate rules (xdpfw_rate, an LRU hash of
 * XDPFW_RATE_BUCKETS): per rule id, and per source prefix for "per src". */
#define XDPFW_RATE_BUCKETS 65536
struct xdpfw_rate_key {
	__u32 rule;
	__u32 src[4]; /* masked to rate_plen; zero without "per src" */
};

struct xdpfw_rate_state {
	__u64 credit_ns;
	__u64 last_ns;
};

/* Address sets (docs/CONTROL.md, "Address sets"): every element of every
 * set in one LPM trie (xdpfw_sets), keyed by a tag and the address, but the
 * full-length ones (/32, /128), which are in a hash (xdpfw_set_hosts). A set's
 * tag is in xdpfw_set_tags[id]: id << 2 | generation << 1 (a "set load"
 * writes the other generation, then switches the tag); the key's tag adds
 * the family in bit 0. IPv4 addresses take the first 4 bytes of addr.
 * Above the tag (XDPFW_SET_TAG_MASK), the value says which of the two maps
 * hold elements of the tag, per family (enum xdpfw_set_kinds): a lookup
 * skips a map that holds none (a set of prefixes only pays no hash miss, a
 * set of hosts only no trie walk after one). */
#define XDPFW_SET_TAG_MASK 0xffffu
/* IPv4's kinds; IPv6's are the same bits shifted by XDPFW_SET_KINDS_V6. */
enum xdpfw_set_kinds {
	XDPFW_SET_HOSTS = 1 << 16,    /* full-length elements (xdpfw_set_hosts) */
	XDPFW_SET_PREFIXES = 1 << 17, /* shorter prefixes (xdpfw_sets) */
};
#define XDPFW_SET_KINDS_V6 2

struct xdpfw_set_key {
	__u32 prefixlen; /* 32 (the tag) + the prefix length */
	__u32 tag;
	__u32 addr[4];
};

/* An element: a member until expires_ns (bpf_ktime_get_coarse_ns, CLOCK_MONOTONIC_COARSE;
 * ~0: never), the latest expiry of the element and of every element of the set that covers
 * it, so that an expired longer prefix never hides a live shorter one. */
struct xdpfw_set_elem {
	__u64 expires_ns;
	__u64 hits; /* packets that found it (approximate: updated without a lock) */
};

/* What the pinned maps' contents mean. Bump it when a map's contents change
 * meaning without any map changing size: an agent that finds pins of another
 * layout (or of other sizes) replaces them (docs/PACKAGING.md, "Upgrades").
 * 0 is the layout of the first package, whose config had a zero pad here;
 * 1 added the views of malformed packets (xdpfw_rulesets x3, key slots);
 * 2 the conditions of candidates (ct, tcp flags, rate, audit) and audit mode;
 * 3 address sets (set_src, set_dst and the SET_NEG flags of candidates);
 * 4 full-length set elements in xdpfw_set_hosts, no longer in the trie;
 * 5 the kinds of elements beside each set's tag (enum xdpfw_set_kinds). */
#define XDPFW_MAP_LAYOUT 6

/* Global run-time settings (one entry). */
struct xdpfw_config {
	__u32 active_slot;
	__u32 layout;	      /* XDPFW_MAP_LAYOUT of the agent that wrote the maps */
	__u64 event_cost_ns;  /* per-CPU token cost of one event; 0 = events off */
	__u64 event_burst_ns; /* per-CPU bucket depth */
	__u32 audit;	      /* mode audit: every drop verdict is counted, reported, passed */
	__u32 pad;
};

/* Per-CPU token bucket state for events. */
struct xdpfw_event_bucket {
	__u64 credit_ns;
	__u64 last_ns;
};

/* Global per-CPU counters, indexed by enum xdpfw_stat: the one list of
 * them (X(ENUM, name)); user space derives "show stats" names and metrics
 * from it (plugin/firewall_service.cpp, counters()). */
#define XDPFW_STATS(X)                                                                             \
	X(PACKETS, packets)                                                                        \
	X(BYTES, bytes)                                                                            \
	X(MATCH_DROP, match_drop)                                                                  \
	X(MATCH_PASS, match_pass)                                                                  \
	X(DEFAULT_DROP, default_drop)                                                              \
	X(DEFAULT_PASS, default_pass)                                                              \
	X(MALFORMED_DROP, malformed_drop)                                                          \
	X(MALFORMED_PASS, malformed_pass)                                                          \
	/* IPv4-mapped or -compatible IPv6 source, dropped before any rule */                      \
	X(MAPPED_DROP, mapped_drop)                                                                \
	X(NON_IP, non_ip)	/* not IPv4/IPv6: always passed */                                 \
	X(FRAGMENTS, fragments) /* non-first fragments seen (no L4) */                             \
	/* malformed reasons: exactly one per malformed packet */                                  \
	X(BAD_L2, bad_l2)			  /* Ethernet or VLAN header truncated */          \
	X(VLAN_TOO_DEEP, vlan_too_deep)		  /* more than XDPFW_MAX_VLAN_TAGS tags */         \
	X(IPV4_TRUNCATED, ipv4_truncated)	  /* header or total length beyond the frame */    \
	X(IPV4_BAD_HEADER, ipv4_bad_header)	  /* version != 4, IHL < 5, total < IHL */         \
	X(IPV6_TRUNCATED, ipv6_truncated)	  /* fixed header or payload beyond the frame */   \
	X(IPV6_BAD_HEADER, ipv6_bad_header)	  /* version != 6 */                               \
	X(IPV6_EXT_TRUNCATED, ipv6_ext_truncated) /* an extension header runs past */              \
	X(IPV6_EXT_TOO_MANY, ipv6_ext_too_many)	  /* > XDPFW_MAX_IPV6_EXT headers */               \
	X(L4_TRUNCATED, l4_truncated)		  /* TCP/UDP/ICMP header past the IP payload */    \
	X(L4_BAD_HEADER, l4_bad_header)		  /* TCP data offset < 5 */                        \
	X(EVENTS_SENT, events_sent)                                                                \
	X(EVENTS_SUPPRESSED, events_suppressed) /* over the rate limit */                          \
	X(EVENTS_FAILED, events_failed)		/* perf buffer full or not open */                 \
	X(CT_LOOKUPS, ct_lookups)		/* conntrack lookups (rule sets with ct) */        \
	X(CT_ESTABLISHED, ct_established)	/* of them: established */                         \
	X(CT_RELATED, ct_related)		/* of them: related (ICMP errors) */               \
	X(RATE_OVER, rate_over)			/* rate rules reached over their rate: decided */  \
	X(RATE_UNDER, rate_under)		/* rate rules reached under it: went on */         \
	X(AUDIT_MATCHES, audit_matches)		/* packets an audit rule would drop */             \
	X(AUDIT_WOULD_DROP, audit_would_drop)	/* mode audit: drop verdicts passed */             \
	X(SET_LOOKUPS, set_lookups)		/* address set lookups */                          \
	X(SET_MEMBERS, set_members)		/* of them: an unexpired element covered it */     \
	/* tables probed (hash lookups) per classified packet: one of these each */                \
	X(PROBES_0, probes_0)                                                                      \
	X(PROBES_1, probes_1)                                                                      \
	X(PROBES_2, probes_2)                                                                      \
	X(PROBES_3_4, probes_3_4)                                                                  \
	X(PROBES_5_8, probes_5_8)                                                                  \
	X(PROBES_9_16, probes_9_16)                                                                \
	X(PROBES_17_PLUS, probes_17_plus)

#define XDPFW_STAT_ENUM(e, name) XDPFW_STAT_##e,
enum xdpfw_stat {
	XDPFW_STATS(XDPFW_STAT_ENUM) XDPFW_STAT_MAX,
};
#undef XDPFW_STAT_ENUM

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

/* Why an event was sent. */
enum xdpfw_event_kind {
	XDPFW_EVENT_UNMATCHED = 0, /* no rule matched (the default action) */
	XDPFW_EVENT_RULE = 1,	   /* a rule with "log" decided */
	XDPFW_EVENT_AUDIT = 2,	   /* an audit rule matched */
	XDPFW_EVENT_MALFORMED = 3, /* mode audit: a malformed packet would be dropped */
};

enum xdpfw_event_verdict {
	XDPFW_VERDICT_PASS = 0,
	XDPFW_VERDICT_DROP = 1,
	XDPFW_VERDICT_WOULD_DROP = 2, /* audit: passed */
};

/* Packet event sent through the perf buffer. */
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
	__u32 rule;   /* the rule's id (RULE, AUDIT); 0 otherwise */
	__u8 kind;    /* enum xdpfw_event_kind */
	__u8 verdict; /* enum xdpfw_event_verdict */
	__u8 pad[2];
};

#endif /* XDPFW_H */
