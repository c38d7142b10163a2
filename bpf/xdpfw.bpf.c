// SPDX-License-Identifier: GPL-2.0
/* xdpfw.bpf.c: the firewall's packet path. parse -> classify against the
 * active rule set (TupleMerge with candidate masks, docs/DATAPATH.md), with
 * the conditions of candidates (ct, TCP flags, rate, audit) -> count ->
 * verdict, and rate-limited perf events for packets no rule matched, rules
 * with "log", audit rules and mode audit. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xdpfw.h"
#include "xdpfw_maps.h"
#include "xdpfw_parse.h"

#define ORDER_NONE (~0ULL)

/* Resolved by libbpf from the running kernel's config; 0 if unknown. */
extern unsigned int CONFIG_HZ __kconfig __weak;

/* A clock for the token bucket. jiffies are read inline (no helper call,
 * which matters on the unmatched path under a flood); their 1/HZ steps are
 * far below the bucket's time scale. */
static __always_inline __u64 bucket_clock_ns(void)
{
	if (CONFIG_HZ)
		return bpf_jiffies64() * (1000000000ULL / CONFIG_HZ);
	return bpf_ktime_get_coarse_ns();
}

/* Bits set in x. Arithmetic only: branches (or a counter kept in the loop)
 * would hand the verifier one state per value. */
static __always_inline __u32 popcount64(__u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/* Index of the lowest bit set in w (w != 0). */
static __always_inline __u32 lowest_bit(__u64 w)
{
	return popcount64((w & -w) - 1);
}

/* ---- conntrack (ct rules) through the kernel's XDP kfunc (Linux 6.0+) ---- */

struct bpf_ct_opts___local {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};

/* Empty, not a forward declaration: libbpf matches the kfuncs' prototypes
 * against the kernel's, and a forward declaration never matches a struct. */
struct nf_conn {
};
struct nf_conn___local {
	unsigned long status;
} __attribute__((preserve_access_index));

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts___local *opts,
					 __u32 opts__sz) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *ct) __ksym __weak;

/* Set by user space before load: the kernel has the kfuncs. When 0, the
 * verifier sees the ct code as dead and never checks its calls. */
const volatile __u32 xdpfw_ct_ok = 0;

#define CT_DIR_REPLY	 1	    /* IP_CT_DIR_REPLY */
#define CT_EXPECTED	 (1UL << 0) /* IPS_EXPECTED */
#define CT_SEEN_REPLY	 (1UL << 1) /* IPS_SEEN_REPLY */
#define CT_NETNS_CURRENT (-1)	    /* BPF_F_CURRENT_NETNS: the device's namespace */

/* The state of the connection of this tuple: 0 when the kernel tracks none,
 * else XDPFW_CT_ESTABLISHED (a reply, or after one) or XDPFW_CT_NEW (the
 * first packets of one direction; an expected connection: RELATED). */
static __always_inline __u8 ct_lookup(struct xdp_md *ctx, struct bpf_sock_tuple *t, __u32 fam,
				      __u8 l4proto)
{
	struct bpf_ct_opts___local opts = {.netns_id = CT_NETNS_CURRENT, .l4proto = l4proto};
	struct nf_conn *ct;
	unsigned long status;

	ct = bpf_xdp_ct_lookup(ctx, t, fam == XDPFW_FAMILY_V4 ? sizeof(t->ipv4) : sizeof(t->ipv6),
			       &opts, sizeof(opts));
	if (!ct)
		return 0;
	status = ((struct nf_conn___local *)ct)->status;
	bpf_ct_release(ct);
	if (opts.dir == CT_DIR_REPLY || (status & CT_SEEN_REPLY))
		return XDPFW_CT_ESTABLISHED;
	if (status & CT_EXPECTED)
		return XDPFW_CT_RELATED;
	return XDPFW_CT_NEW;
}

static __always_inline int is_icmp_error(const struct xdpfw_pkt *p)
{
	if (p->proto == IPPROTO_ICMP) /* unreachable, source quench, time exceeded, parameter */
		return p->sport == 3 || p->sport == 4 || p->sport == 11 || p->sport == 12;
	if (p->proto == IPPROTO_ICMPV6) /* unreachable, too big, time exceeded, parameter */
		return p->sport >= 1 && p->sport <= 4;
	return 0;
}

/* An ICMP error is related when the packet it quotes (after the 8 bytes of
 * the ICMP header: an IP header without options or extension headers, then
 * the ports) belongs to a tracked connection. */
static __always_inline __u8 ct_related(struct xdp_md *ctx, const struct xdpfw_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 off = (p->l4_off & 0xfff) + 8;
	struct bpf_sock_tuple t = {};
	__be16 *ports;
	__u8 proto;

	if (p->family == XDPFW_FAMILY_V4) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > data_end || ip->ihl != 5)
			return 0;
		proto = ip->protocol;
		t.ipv4.saddr = ip->saddr;
		t.ipv4.daddr = ip->daddr;
		ports = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		proto = ip6->nexthdr;
		__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, 16);
		ports = (void *)(ip6 + 1);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	if ((void *)(ports + 2) > data_end)
		return 0;
	if (p->family == XDPFW_FAMILY_V4) {
		t.ipv4.sport = ports[0];
		t.ipv4.dport = ports[1];
	} else {
		t.ipv6.sport = ports[0];
		t.ipv6.dport = ports[1];
	}
	return ct_lookup(ctx, &t, p->family, proto) ? XDPFW_CT_RELATED : 0;
}

/* The packet's connection state for ct rules (docs/DATAPATH.md, "ct"):
 * TCP and UDP looked up as they are, ICMP errors through what they quote;
 * everything else (echo replies included) is new. A global function, like
 * the other two below: the verifier checks it once, on its own, where its
 * paths inlined would each carry a different stack into the classifier. */
__attribute__((noinline)) int ct_state(struct xdp_md *ctx, struct xdpfw_pkt *p,
				       struct xdpfw_stats *st)
{
	struct bpf_sock_tuple t = {};
	__u8 state;

	if (!p || !st)
		return XDPFW_CT_NEW;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		if (p->family == XDPFW_FAMILY_V4) {
			t.ipv4.saddr = p->src[0];
			t.ipv4.daddr = p->dst[0];
			t.ipv4.sport = bpf_htons(p->sport);
			t.ipv4.dport = bpf_htons(p->dport);
		} else {
			__builtin_memcpy(t.ipv6.saddr, p->src, 16);
			__builtin_memcpy(t.ipv6.daddr, p->dst, 16);
			t.ipv6.sport = bpf_htons(p->sport);
			t.ipv6.dport = bpf_htons(p->dport);
		}
		st->c[XDPFW_STAT_CT_LOOKUPS]++;
		state = ct_lookup(ctx, &t, p->family, p->proto);
	} else if (is_icmp_error(p)) {
		st->c[XDPFW_STAT_CT_LOOKUPS]++;
		state = ct_related(ctx, p);
	} else {
		return XDPFW_CT_NEW;
	}
	if (state == XDPFW_CT_ESTABLISHED)
		st->c[XDPFW_STAT_CT_ESTABLISHED]++;
	else if (state == XDPFW_CT_RELATED)
		st->c[XDPFW_STAT_CT_RELATED]++;
	return state ? state : XDPFW_CT_NEW;
}

/* Rules that matched but did not decide, acted on once the deciding rule
 * is known, if they come before it: a rate rule under its rate takes a
 * token, an audit rule counts and reports. Up to PENDING_MAX per packet. */
#define PENDING_MAX   4
#define PENDING_TOKEN 1
#define PENDING_AUDIT 2

/* Per-packet state that the bucket scan changes, in a per-CPU map rather
 * than on the stack: the verifier tracks a map's contents as unknown, where
 * a count or a state kept on the stack would give it one state per value. */
struct packet_state {
	__u64 pending_order[PENDING_MAX];
	__u32 pending_idx[PENDING_MAX];
	__u8 pending_kind[PENDING_MAX];
	__u32 npending;
	__u32 ct;		   /* the packet's enum xdpfw_ct_state (rule sets with ct) */
	struct xdpfw_rate_key key; /* a rate rule's bucket, built here: the stack is short */
	struct xdpfw_set_key skey; /* an address set lookup's key */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct packet_state);
} xdpfw_packet_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpfw_event);
} xdpfw_event_scratch SEC(".maps");

/* State of one classification (bpf_loop context). */
struct classify_ctx {
	const struct xdpfw_ruleset *rs;
	const struct xdpfw_pkt *pkt;
	__u64 m[XDPFW_MASK_WORDS]; /* tables still worth probing */
	__u64 best_order;
	__u32 best_counter;
	__u32 slot; /* with the view: slot + XDPFW_SLOTS * view */
	__u8 best_action;
	__u16 best_flags; /* the best rule's enum xdpfw_cand_flags */
	/* Malformed packets: the candidate fields the packet lacks (a value,
	 * not a branch: the verifier sees one state either way); the best
	 * rule's record is read again afterwards to see whether it needs one. */
	__u16 skip;
};

static __always_inline void and_summary(struct classify_ctx *c, __u32 fam, __u32 field, __u32 v)
{
	__u32 idx = c->rs->summary_block[fam & 1][field] * XDPFW_SUMMARY_SPACE + v;
	struct xdpfw_tmask *t = bpf_map_lookup_elem(&xdpfw_summary, &idx);

	if (!t) {
		c->m[0] = c->m[1] = 0;
		return;
	}
	c->m[0] &= t->w[0];
	c->m[1] &= t->w[1];
}

/* The tables that could hold a match: the proto mask, the port mask (or the
 * tables that need no ports), and the address summaries the compiler found
 * worth reading. */
static __always_inline void candidates(struct classify_ctx *c, __u32 fam)
{
	const struct xdpfw_ruleset *rs = c->rs;
	const struct xdpfw_pkt *p = c->pkt;
	__u8 use = rs->summaries[fam];

	c->m[0] = rs->proto[fam][p->proto].w[0];
	c->m[1] = rs->proto[fam][p->proto].w[1];
	if (!p->has_ports) {
		c->m[0] &= rs->noport[fam].w[0];
		c->m[1] &= rs->noport[fam].w[1];
	} else if (use & (1 << XDPFW_SUMMARY_DPORT)) {
		and_summary(c, fam, XDPFW_SUMMARY_DPORT, p->dport);
	}
	/* IPv4: the top 16 bits; IPv6: bits 32-47 (a /16 of 2001:db8::/32 is one value) */
	if (use & (1 << XDPFW_SUMMARY_SRC))
		and_summary(c, fam, XDPFW_SUMMARY_SRC,
			    bpf_ntohl(fam == XDPFW_FAMILY_V4 ? p->src[0] : p->src[1]) >> 16);
	if (use & (1 << XDPFW_SUMMARY_DST))
		and_summary(c, fam, XDPFW_SUMMARY_DST,
			    bpf_ntohl(fam == XDPFW_FAMILY_V4 ? p->dst[0] : p->dst[1]) >> 16);
}

/* Does the candidate match, on the fields it constrains other than those in
 * skip (the ones a malformed packet lacks: enum xdpfw_cand_flags)? */
static __always_inline int cand_matches(const struct xdpfw_cand *r, const struct xdpfw_pkt *p,
					__u32 fam, __u16 skip)
{
	__u16 flags = r->flags & ~skip;

	if ((p->src[0] ^ r->src[0]) & r->src_mask[0])
		return 0;
	if ((p->dst[0] ^ r->dst[0]) & r->dst_mask[0])
		return 0;
	if (fam == XDPFW_FAMILY_V6) {
		if (((p->src[1] ^ r->src[1]) & r->src_mask[1]) |
		    ((p->src[2] ^ r->src[2]) & r->src_mask[2]) |
		    ((p->src[3] ^ r->src[3]) & r->src_mask[3]))
			return 0;
		if (((p->dst[1] ^ r->dst[1]) & r->dst_mask[1]) |
		    ((p->dst[2] ^ r->dst[2]) & r->dst_mask[2]) |
		    ((p->dst[3] ^ r->dst[3]) & r->dst_mask[3]))
			return 0;
	}
	if ((flags & XDPFW_CAND_PROTO) && p->proto != r->proto)
		return 0;
	if (flags & XDPFW_CAND_L4) {
		if (!p->has_ports)
			return 0;
		if (p->sport < r->sport_lo || p->sport > r->sport_hi)
			return 0;
		if (p->dport < r->dport_lo || p->dport > r->dport_hi)
			return 0;
	}
	if ((flags & XDPFW_CAND_TCP_FLAGS) && (p->tcp_flags & r->tcp_mask) != r->tcp_set)
		return 0;
	return 1;
}

/* The address bits of one word of a /plen prefix (network byte order). */
static __always_inline __u32 prefix_word(__u32 plen, __u32 word)
{
	__u32 bits = plen > word * 32 ? plen - word * 32 : 0;

	if (bits >= 32)
		return ~0U;
	if (!bits)
		return 0;
	return bpf_htonl(~0U << (32 - bits));
}

static __always_inline void rate_key(const struct xdpfw_cand *r, const struct xdpfw_pkt *p,
				     struct xdpfw_rate_key *k)
{
	__u32 plen = r->rate_plen;

	if (p->family == XDPFW_FAMILY_V4 && plen > 32)
		plen = 32;
	k->rule = (__u32)r->order;
	k->src[0] = p->src[0] & prefix_word(plen, 0);
	k->src[1] = p->src[1] & prefix_word(plen, 1);
	k->src[2] = p->src[2] & prefix_word(plen, 2);
	k->src[3] = p->src[3] & prefix_word(plen, 3);
}

/* The credit of a rate rule's bucket now (a new bucket is full). */
static __always_inline __u64 rate_credit(const struct xdpfw_cand *r,
					 const struct xdpfw_rate_state *b, __u64 now)
{
	__u64 credit;

	if (!b)
		return r->rate_burst_ns;
	credit = b->credit_ns + (now - b->last_ns);
	return credit > r->rate_burst_ns ? r->rate_burst_ns : credit;
}

/* Is the packet over the rule's rate? Reads the bucket only: the token is
 * taken afterwards (take_token), if no better rule decides the packet. */
static __always_inline int rate_over(const struct xdpfw_cand *r, const struct xdpfw_pkt *p,
				     struct packet_state *ps)
{
	rate_key(r, p, &ps->key);
	return rate_credit(r, bpf_map_lookup_elem(&xdpfw_rate, &ps->key), bucket_clock_ns()) <
	       r->rate_cost_ns;
}

static __always_inline void take_token(const struct xdpfw_cand *r, const struct xdpfw_pkt *p)
{
	struct xdpfw_rate_state *b, fresh;
	struct xdpfw_rate_key k;
	__u64 now = bucket_clock_ns(), credit;

	rate_key(r, p, &k);
	b = bpf_map_lookup_elem(&xdpfw_rate, &k);
	credit = rate_credit(r, b, now);
	credit = credit > r->rate_cost_ns ? credit - r->rate_cost_ns : 0;
	if (b) {
		b->credit_ns = credit;
		b->last_ns = now;
		return;
	}
	fresh.credit_ns = credit;
	fresh.last_ns = now;
	bpf_map_update_elem(&xdpfw_rate, &k, &fresh, BPF_ANY);
}

static __always_inline void add_pending(struct packet_state *ps, __u32 idx, __u64 order, __u8 kind)
{
	__u32 n = ps->npending;

	if (n >= PENDING_MAX)
		return;
	ps->pending_order[n & (PENDING_MAX - 1)] = order;
	ps->pending_idx[n & (PENDING_MAX - 1)] = idx;
	ps->pending_kind[n & (PENDING_MAX - 1)] = kind;
	ps->npending = n + 1;
}

struct scan_ctx {
	struct classify_ctx *c;
	const struct xdpfw_bucket *b;
	__u32 fam;
	__u32 done; /* no later candidate (or chained bucket) can win */
};

/* Is the address (of the packet's family) in the set: covered by an element
 * that has not expired? */
static __always_inline int in_set(__u32 set, const __u32 *addr, __u32 fam, struct packet_state *ps,
				  struct xdpfw_stats *st)
{
	struct xdpfw_set_elem *e = NULL;
	__u32 *tag, v, kinds;

	tag = bpf_map_lookup_elem(&xdpfw_set_tags, &set);
	if (!tag)
		return 0;
	v = *tag;
	if (!(v & XDPFW_SET_TAG_MASK))
		return 0;
	st->c[XDPFW_STAT_SET_LOOKUPS]++;
	kinds = fam == XDPFW_FAMILY_V4 ? v : v >> XDPFW_SET_KINDS_V6;
	ps->skey.prefixlen = fam == XDPFW_FAMILY_V4 ? 32 + 32 : 32 + 128;
	ps->skey.tag = (v & XDPFW_SET_TAG_MASK) | (fam & 1);
	ps->skey.addr[0] = addr[0];
	ps->skey.addr[1] = fam == XDPFW_FAMILY_V4 ? 0 : addr[1];
	ps->skey.addr[2] = fam == XDPFW_FAMILY_V4 ? 0 : addr[2];
	ps->skey.addr[3] = fam == XDPFW_FAMILY_V4 ? 0 : addr[3];
	/* A full-length element first (xdpfw_maps.h): it would be the trie's
	 * longest match anyway, and an expired one covers no live prefix (its
	 * expiry is the latest of the prefixes that cover it). A map that
	 * holds no element of the tag is not asked. */
	if (kinds & XDPFW_SET_HOSTS)
		e = bpf_map_lookup_elem(&xdpfw_set_hosts, &ps->skey);
	if (!e && (kinds & XDPFW_SET_PREFIXES))
		e = bpf_map_lookup_elem(&xdpfw_sets, &ps->skey);
	if (!e || e->expires_ns <= bpf_ktime_get_coarse_ns())
		return 0;
	/* Not an atomic add: the trie's values are only 4-byte aligned (a node
	 * is its header, the key without prefixlen, then the value), and a
	 * locked add across a cache line took 1.5 us a packet here. Concurrent
	 * CPUs can lose an increment: the count is approximate (the hash's too,
	 * to count alike). */
	e->hits++;
	st->c[XDPFW_STAT_SET_MEMBERS]++;
	return 1;
}

/* Do the candidate's set references hold for the packet? */
static __always_inline int sets_hold(const struct xdpfw_cand *r, const struct xdpfw_pkt *p,
				     struct packet_state *ps)
{
	struct xdpfw_stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&xdpfw_stats, &zero);
	if (!st)
		return 0;
	if (r->set_src &&
	    in_set(r->set_src, p->src, p->family, ps, st) == !!(r->flags & XDPFW_CAND_SET_NEG_SRC))
		return 0;
	if (r->set_dst &&
	    in_set(r->set_dst, p->dst, p->family, ps, st) == !!(r->flags & XDPFW_CAND_SET_NEG_DST))
		return 0;
	return 1;
}

/* The conditions of a candidate that matched on its fields: 1 when it
 * decides the packet. skip: what a malformed packet lacks; a rule that
 * needs it decides (the malformed action), unless it is an audit rule. */
__attribute__((noinline)) int cand_decides(struct xdpfw_cand *r, struct xdpfw_pkt *p, __u32 idx,
					   __u32 skip)
{
	struct packet_state *ps;
	__u32 zero = 0;

	ps = bpf_map_lookup_elem(&xdpfw_packet_state, &zero);
	if (!r || !p || !ps)
		return 0;
	/* sets first: a malformed packet's addresses were read */
	if ((r->flags & XDPFW_CAND_SET) && !sets_hold(r, p, ps))
		return 0;
	if (r->flags & skip)
		return r->action != XDPFW_ACTION_AUDIT;
	if ((r->flags & XDPFW_CAND_CT) && !(r->ct & ps->ct))
		return 0;
	if ((r->flags & XDPFW_CAND_RATE) && !rate_over(r, p, ps)) {
		add_pending(ps, idx, r->order, PENDING_TOKEN);
		return 0;
	}
	if (r->action == XDPFW_ACTION_AUDIT) {
		add_pending(ps, idx, r->order, PENDING_AUDIT);
		return 0;
	}
	return 1;
}

/* Candidate j of a bucket (bpf_loop callback): the first that matches is the
 * best of the bucket; stop as soon as none left can beat the best so far. */
/* Checks candidate j of the bucket; returns 1 when the scan is over: it
 * matched (the best of the bucket, which is sorted) or no candidate from here
 * on can beat the best so far. */
static __always_inline long check_cand(struct scan_ctx *s, __u32 j)
{
	struct classify_ctx *c = s->c;
	const struct xdpfw_cand *r;
	__u32 idx = s->b->cand[j & (XDPFW_BUCKET_SIZE - 1)];

	r = bpf_map_lookup_elem(&xdpfw_cands, &idx);
	if (!r || r->order >= c->best_order) {
		s->done = 1;
		return 1;
	}
	if (!cand_matches(r, c->pkt, s->fam, c->skip))
		return 0;
	if (((r->flags & (c->skip | XDPFW_CAND_CT | XDPFW_CAND_RATE | XDPFW_CAND_SET)) ||
	     r->action == XDPFW_ACTION_AUDIT) &&
	    !cand_decides((struct xdpfw_cand *)r, (struct xdpfw_pkt *)c->pkt, idx, c->skip))
		return 0;
	c->best_order = r->order;
	c->best_counter = r->counter;
	c->best_action = r->action;
	c->best_flags = r->flags;
	s->done = 1;
	return 1;
}

static long scan_cand(__u32 j, void *arg)
{
	return check_cand(arg, j + 1);
}

/* Returns non-zero when the chain after this bucket need not be read. */
static __always_inline __u32 scan_bucket(struct classify_ctx *c, const struct xdpfw_bucket *b,
					 __u32 fam)
{
	struct scan_ctx s = {.c = c, .b = b, .fam = fam};
	__u32 n = b->n;

	if (n > XDPFW_BUCKET_SIZE)
		n = XDPFW_BUCKET_SIZE;
	/* most buckets hold one rule: the first check costs no loop */
	if (n && !check_cand(&s, 0) && n > 1)
		bpf_loop(n - 1, scan_cand, &s, 0);
	return s.done || !b->more;
}

/* The links after the first of a bucket chain (rare: only where more than
 * XDPFW_BUCKET_SIZE rules agree on every hashed field). */
struct chain_ctx {
	struct classify_ctx *c;
	void *key; /* struct xdpfw_key4 or xdpfw_key6 */
	__u32 fam;
};

static long visit_link(__u32 j, void *arg)
{
	struct chain_ctx *h = arg;
	const struct xdpfw_bucket *b;

	if (h->fam == XDPFW_FAMILY_V4) {
		struct xdpfw_key4 *k = h->key;

		k->chain = j + 1;
		b = bpf_map_lookup_elem(&xdpfw_buckets_v4, k);
	} else {
		struct xdpfw_key6 *k = h->key;

		k->chain = j + 1;
		b = bpf_map_lookup_elem(&xdpfw_buckets_v6, k);
	}
	if (!b)
		return 1;
	return scan_bucket(h->c, b, h->fam);
}

static __always_inline void scan_chain(struct classify_ctx *c, const struct xdpfw_bucket *b,
				       void *key, __u32 fam)
{
	struct chain_ctx h = {.c = c, .key = key, .fam = fam};

	if (scan_bucket(c, b, fam))
		return;
	bpf_loop(XDPFW_MAX_CHAIN - 1, visit_link, &h, 0);
}

#define FILL_KEY_HEAD(key, t, i, c)                                                                \
	do {                                                                                       \
		(key).slot = (c)->slot;                                                            \
		(key).table = (i);                                                                 \
		(key).proto = (c)->pkt->proto & (t)->proto_mask;                                   \
		(key).chain = 0;                                                                   \
		(key).sport = (c)->pkt->sport & (t)->sport_mask;                                   \
		(key).dport = (c)->pkt->dport & (t)->dport_mask;                                   \
	} while (0)

/* Takes the next candidate table (lowest bit = best min_order), or NULL
 * when none is left that could beat the best match so far. Only the bits of
 * tables probed are cleared: classify() counts probes from them. */
static __always_inline const struct xdpfw_table *next_table(struct classify_ctx *c, __u32 fam,
							    __u32 *index)
{
	const struct xdpfw_table *t;
	__u32 w, i;

	if (c->m[0]) {
		w = 0;
		i = lowest_bit(c->m[0]);
	} else if (c->m[1]) {
		w = 1;
		i = 64 + lowest_bit(c->m[1]);
	} else {
		return NULL;
	}
	i &= XDPFW_MAX_TABLES - 1;
	t = &c->rs->tables[fam][i];
	if (c->best_order <= t->min_order)
		return NULL;
	if (w == 0)
		c->m[0] &= c->m[0] - 1;
	else
		c->m[1] &= c->m[1] - 1;
	*index = i;
	return t;
}

static __always_inline long visit_table4(struct classify_ctx *c)
{
	const struct xdpfw_pkt *p = c->pkt;
	const struct xdpfw_bucket *b;
	const struct xdpfw_table *t;
	struct xdpfw_key4 k;
	__u32 i;

	t = next_table(c, XDPFW_FAMILY_V4, &i);
	if (!t)
		return 1;
	FILL_KEY_HEAD(k, t, i, c);
	k.src = p->src[0] & t->src_mask[0];
	k.dst = p->dst[0] & t->dst_mask[0];
	b = bpf_map_lookup_elem(&xdpfw_buckets_v4, &k);
	if (b)
		scan_chain(c, b, &k, XDPFW_FAMILY_V4);
	return 0;
}

static __always_inline long visit_table6(struct classify_ctx *c)
{
	const struct xdpfw_pkt *p = c->pkt;
	const struct xdpfw_bucket *b;
	const struct xdpfw_table *t;
	struct xdpfw_key6 k;
	__u32 i;

	t = next_table(c, XDPFW_FAMILY_V6, &i);
	if (!t)
		return 1;
	FILL_KEY_HEAD(k, t, i, c);
	k.src[0] = p->src[0] & t->src_mask[0];
	k.src[1] = p->src[1] & t->src_mask[1];
	k.src[2] = p->src[2] & t->src_mask[2];
	k.src[3] = p->src[3] & t->src_mask[3];
	k.dst[0] = p->dst[0] & t->dst_mask[0];
	k.dst[1] = p->dst[1] & t->dst_mask[1];
	k.dst[2] = p->dst[2] & t->dst_mask[2];
	k.dst[3] = p->dst[3] & t->dst_mask[3];
	b = bpf_map_lookup_elem(&xdpfw_buckets_v6, &k);
	if (b)
		scan_chain(c, b, &k, XDPFW_FAMILY_V6);
	return 0;
}

/* One callback for both families: one bpf_loop call site with a constant
 * callback, which the verifier inlines (two would be merged by the compiler
 * into one call with a variable callback, which it does not). */
static __always_inline long visit_next_table(struct classify_ctx *c)
{
	if (c->pkt->family == XDPFW_FAMILY_V4)
		return visit_table4(c);
	return visit_table6(c);
}

static long visit_table(__u32 unused, void *arg)
{
	return visit_next_table(arg);
}

/* TupleMerge with candidate masks (docs/DATAPATH.md): the tables that could
 * match, best first, one hash probe each, a short bucket scan, early stop.
 * Fills c->best_*; best_order stays ORDER_NONE when nothing matched.
 * Returns the number of tables probed. */
static __always_inline __u32 classify(struct classify_ctx *c)
{
	__u32 fam = c->pkt->family & 1;
	__u32 before;

	if (!c->rs->ntables[fam])
		return 0;
	candidates(c, fam);
	before = popcount64(c->m[0]) + popcount64(c->m[1]);
	/* every table through the loop (one visited before it, inline, would
	 * put its keys on this frame, over the stack's 512 bytes) */
	if (c->m[0] | c->m[1])
		bpf_loop(XDPFW_MAX_TABLES, visit_table, c, 0);
	return before - popcount64(c->m[0]) - popcount64(c->m[1]);
}

/* What classify_packet found. */
struct classify_out {
	__u64 best_order; /* ORDER_NONE: no rule matched */
	__u32 best_counter;
	__u32 probes;
	__u8 best_action;
	__u8 pad;
	__u16 best_flags;
	__u8 pad2[4];
};

/* The classifier as a global function: the verifier checks it once, for any
 * packet, rather than once for each way the parser can fill the packet
 * (which took it to the edge of its million-instruction budget). slot: the
 * rule set's index in xdpfw_rulesets (slot + XDPFW_SLOTS * view); skip: what
 * a malformed packet lacks. Returns 0 when there is no such rule set. */
__attribute__((noinline)) int classify_packet(struct xdpfw_pkt *pkt, __u32 slot, __u32 skip,
					      struct classify_out *out)
{
	struct classify_ctx c = {};

	if (!pkt || !out)
		return 0;
	c.rs = bpf_map_lookup_elem(&xdpfw_rulesets, &slot);
	if (!c.rs)
		return 0;
	c.pkt = pkt;
	c.best_order = ORDER_NONE;
	c.slot = slot;
	c.skip = skip;
	out->probes = classify(&c);
	out->best_order = c.best_order;
	out->best_counter = c.best_counter;
	out->best_action = c.best_action;
	out->best_flags = c.best_flags;
	return 1;
}

static __always_inline void count_probes(struct xdpfw_stats *st, __u32 probes)
{
	__u32 s;

	if (probes <= 2)
		s = XDPFW_STAT_PROBES_0 + probes;
	else if (probes <= 4)
		s = XDPFW_STAT_PROBES_3_4;
	else if (probes <= 8)
		s = XDPFW_STAT_PROBES_5_8;
	else if (probes <= 16)
		s = XDPFW_STAT_PROBES_9_16;
	else
		s = XDPFW_STAT_PROBES_17_PLUS;
	st->c[s]++;
}

/* The verdict of an action, counted; in mode audit a drop is passed. */
static __always_inline int verdict(const struct xdpfw_config *cfg, __u8 action,
				   struct xdpfw_stats *st, int drop_stat, int pass_stat)
{
	if (action == XDPFW_ACTION_DROP) {
		st->c[drop_stat]++;
		if (cfg->audit) {
			st->c[XDPFW_STAT_AUDIT_WOULD_DROP]++;
			return XDP_PASS;
		}
		return XDP_DROP;
	}
	st->c[pass_stat]++;
	return XDP_PASS;
}

/* What an event says of a verdict. */
static __always_inline __u8 event_verdict(const struct xdpfw_config *cfg, __u8 action)
{
	if (action != XDPFW_ACTION_DROP)
		return XDPFW_VERDICT_PASS;
	return cfg->audit ? XDPFW_VERDICT_WOULD_DROP : XDPFW_VERDICT_DROP;
}

/* Per-CPU token bucket: credit accrues with time up to the burst; an event
 * costs event_cost_ns of credit. */
static __always_inline int event_allowed(const struct xdpfw_config *cfg)
{
	struct xdpfw_event_bucket *b;
	__u32 zero = 0;
	__u64 now, credit;

	b = bpf_map_lookup_elem(&xdpfw_event_bucket, &zero);
	if (!b)
		return 0;
	now = bucket_clock_ns();
	credit = b->credit_ns + (now - b->last_ns);
	if (credit > cfg->event_burst_ns)
		credit = cfg->event_burst_ns;
	b->last_ns = now;
	if (credit < cfg->event_cost_ns) {
		b->credit_ns = credit;
		return 0;
	}
	b->credit_ns = credit - cfg->event_cost_ns;
	return 1;
}

/* Sends one packet event, within the event rate cap. */
static __always_inline void report(struct xdp_md *ctx, const struct xdpfw_config *cfg,
				   struct xdpfw_stats *st, const struct xdpfw_pkt *pkt, __u32 len,
				   __u8 kind, __u8 verdict, __u32 rule)
{
	struct xdpfw_event *e;
	__u32 zero = 0;

	if (!cfg->event_cost_ns)
		return;
	if (!event_allowed(cfg)) {
		st->c[XDPFW_STAT_EVENTS_SUPPRESSED]++;
		return;
	}
	/* built in a per-CPU map: the stack of the deepest chain of calls is
	 * 512 bytes in all */
	e = bpf_map_lookup_elem(&xdpfw_event_scratch, &zero);
	if (!e)
		return;
	e->timestamp_ns = bpf_ktime_get_ns();
	e->ifindex = ctx->ingress_ifindex;
	e->pkt_len = len;
	e->family = pkt->family;
	e->proto = pkt->proto;
	e->tcp_flags = pkt->tcp_flags;
	e->flags = (pkt->has_ports ? XDPFW_EVENT_HAS_PORTS : 0) |
		   (pkt->fragment ? XDPFW_EVENT_FRAGMENT : 0);
	e->sport = pkt->sport;
	e->dport = pkt->dport;
	__builtin_memcpy(e->src, pkt->src, sizeof(e->src));
	__builtin_memcpy(e->dst, pkt->dst, sizeof(e->dst));
	e->rule = rule;
	e->kind = kind;
	e->verdict = verdict;
	e->pad[0] = e->pad[1] = 0;
	if (bpf_perf_event_output(ctx, &xdpfw_events, BPF_F_CURRENT_CPU, e, sizeof(*e)))
		st->c[XDPFW_STAT_EVENTS_FAILED]++;
	else
		st->c[XDPFW_STAT_EVENTS_SENT]++;
}

/* The rules that matched before the deciding one without deciding: rate
 * rules take their token, audit rules count and report. */
__attribute__((noinline)) int settle_pending(struct xdp_md *ctx, struct xdpfw_pkt *pkt,
					     __u64 best_order, __u32 len)
{
	struct packet_state *ps;
	struct xdpfw_config *cfg;
	struct xdpfw_stats *st;
	__u32 i, zero = 0;

	ps = bpf_map_lookup_elem(&xdpfw_packet_state, &zero);
	st = bpf_map_lookup_elem(&xdpfw_stats, &zero);
	cfg = bpf_map_lookup_elem(&xdpfw_config, &zero);
	if (!cfg || !st || !ps || !pkt || !ps->npending)
		return 0;
#pragma clang loop unroll(full)
	for (i = 0; i < PENDING_MAX; i++) {
		const struct xdpfw_cand *r;
		struct xdpfw_rule_counters *rc;
		__u32 idx;

		if (i >= ps->npending)
			break;
		if (ps->pending_order[i] >= best_order)
			continue;
		idx = ps->pending_idx[i];
		r = bpf_map_lookup_elem(&xdpfw_cands, &idx);
		if (!r)
			continue;
		if (ps->pending_kind[i] == PENDING_TOKEN) {
			take_token(r, pkt);
			st->c[XDPFW_STAT_RATE_UNDER]++;
			continue;
		}
		st->c[XDPFW_STAT_AUDIT_MATCHES]++;
		rc = bpf_map_lookup_elem(&xdpfw_rule_counters, &r->counter);
		if (rc) {
			rc->packets++;
			rc->bytes += len;
		}
		report(ctx, cfg, st, pkt, len, XDPFW_EVENT_AUDIT, XDPFW_VERDICT_WOULD_DROP,
		       (__u32)r->order);
	}
	return 0;
}

SEC("xdp")
int xdpfw_main(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct xdpfw_pkt pkt = {};
	struct xdpfw_config *cfg;
	const struct xdpfw_ruleset *crs;
	struct xdpfw_ruleset *rs;
	struct xdpfw_stats *st;
	struct packet_state *ps;
	struct classify_out res = {};
	__u32 zero = 0, slot, cslot, skip = 0;
	int reason;

	st = bpf_map_lookup_elem(&xdpfw_stats, &zero);
	cfg = bpf_map_lookup_elem(&xdpfw_config, &zero);
	if (!st || !cfg)
		return XDP_PASS;
	slot = cfg->active_slot & 1;
	rs = bpf_map_lookup_elem(&xdpfw_rulesets, &slot);
	if (!rs)
		return XDP_PASS;

	st->c[XDPFW_STAT_PACKETS]++;
	st->c[XDPFW_STAT_BYTES] += len;

	reason = parse_packet(data, data_end, &pkt);
	if (reason == PARSE_NOT_IP) {
		st->c[XDPFW_STAT_NON_IP]++;
		return XDP_PASS;
	}
	crs = rs;
	cslot = slot;
	if (reason >= XDPFW_STAT_FIRST_MALFORMED && reason <= XDPFW_STAT_LAST_MALFORMED)
		st->c[reason]++;
	/* An IPv4-mapped or -compatible IPv6 source, malformed or not: no rule
	 * sees it unless mapped_action is pass (docs/DATAPATH.md, "IPv4
	 * addresses in IPv6 sources"). */
	if (pkt.mapped && rs->mapped_action == XDPFW_ACTION_DROP)
		return verdict(cfg, XDPFW_ACTION_DROP, st, XDPFW_STAT_MAPPED_DROP,
			       XDPFW_STAT_MAPPED_DROP);
	if (reason != PARSE_OK) {
		__u32 readable = pkt.readable;

		/* A malformed packet: the first rule whose readable fields match
		 * decides, through the view of the rule set blind to what the
		 * packet lacks (XDPFW_READ_NO_L4 or _NO_PROTO, tested as a range:
		 * one verifier state); when that rule needs a field the parser
		 * could not read, when no rule matches, or when not even the
		 * addresses were read, malformed_action does. */
		if (readable - 1 > XDPFW_READ_NO_PROTO - 1)
			goto malformed;
		cslot = slot + XDPFW_SLOTS * readable;
		crs = bpf_map_lookup_elem(&xdpfw_rulesets, &cslot);
		if (!crs)
			goto malformed;
		/* no L4: ports, ICMP, TCP flags, ct; view 2: the protocol too */
		skip = XDPFW_CAND_NEEDS_L4 | ((readable >> 1) & XDPFW_CAND_PROTO);
		pkt.has_ports = 0;
	} else if (pkt.fragment) {
		st->c[XDPFW_STAT_FRAGMENTS]++;
	}

	/* Rule sets without ct, rate or audit rules pay nothing more. With ct
	 * rules of the packet's family, the connection state of a packet
	 * that can have one is looked up once. */
	if (crs->conditioned) {
		ps = bpf_map_lookup_elem(&xdpfw_packet_state, &zero);
		if (!ps)
			return XDP_PASS;
		ps->npending = 0;
		ps->ct = XDPFW_CT_NEW;
		if (xdpfw_ct_ok && crs->ct[pkt.family & 1] && pkt.has_ports && !skip)
			ps->ct = ct_state(ctx, &pkt, st);
	}

	res.best_order = ORDER_NONE;
	if (!classify_packet(&pkt, cslot, skip, &res))
		goto malformed;
	count_probes(st, res.probes);
	if (crs->conditioned)
		settle_pending(ctx, &pkt, res.best_order, len);
	if (res.best_order != ORDER_NONE) {
		struct xdpfw_rule_counters *rc;

		/* malformed: does the rule need what was not read? */
		if (res.best_flags & skip)
			goto malformed;
		rc = bpf_map_lookup_elem(&xdpfw_rule_counters, &res.best_counter);
		if (rc) {
			rc->packets++;
			rc->bytes += len;
		}
		if (res.best_flags & XDPFW_CAND_RATE)
			st->c[XDPFW_STAT_RATE_OVER]++;
		if ((res.best_flags & XDPFW_CAND_LOG) ||
		    (cfg->audit && res.best_action == XDPFW_ACTION_DROP))
			report(ctx, cfg, st, &pkt, len, XDPFW_EVENT_RULE,
			       event_verdict(cfg, res.best_action), (__u32)res.best_order);
		return verdict(cfg, res.best_action, st, XDPFW_STAT_MATCH_DROP,
			       XDPFW_STAT_MATCH_PASS);
	}
	if (skip)
		goto malformed;
	report(ctx, cfg, st, &pkt, len, XDPFW_EVENT_UNMATCHED,
	       event_verdict(cfg, rs->default_action), 0);
	return verdict(cfg, rs->default_action, st, XDPFW_STAT_DEFAULT_DROP,
		       XDPFW_STAT_DEFAULT_PASS);
malformed:
	if (cfg->audit && rs->malformed_action == XDPFW_ACTION_DROP)
		report(ctx, cfg, st, &pkt, len, XDPFW_EVENT_MALFORMED, XDPFW_VERDICT_WOULD_DROP, 0);
	return verdict(cfg, rs->malformed_action, st, XDPFW_STAT_MALFORMED_DROP,
		       XDPFW_STAT_MALFORMED_PASS);
}

char LICENSE[] SEC("license") = "GPL";
