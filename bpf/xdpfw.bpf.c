// SPDX-License-Identifier: GPL-2.0
/* xdpfw.bpf.c: the firewall's packet path. parse -> classify against the
 * active rule set (TupleMerge with candidate masks, docs/DATAPATH.md) -> count -> verdict,
 * and a rate-limited perf event for packets no rule matched. */
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

/* State of one classification (bpf_loop context). */
struct classify_ctx {
	const struct xdpfw_ruleset *rs;
	const struct xdpfw_pkt *pkt;
	__u64 m[XDPFW_MASK_WORDS]; /* tables still worth probing */
	__u64 best_order;
	__u32 best_counter;
	__u32 slot; /* with the view: slot + XDPFW_SLOTS * view */
	__u8 best_action;
	/* Malformed packets: the candidate fields the packet lacks (a value,
	 * not a branch: the verifier sees one state either way); the best
	 * rule's record is read again afterwards to see whether it needs one. */
	__u8 skip;
	__u32 best_idx;
};

static __always_inline void and_summary(struct classify_ctx *c, __u32 fam, __u32 field, __u32 v)
{
	__u32 idx = ((c->slot * 2 + fam) * XDPFW_SUMMARY_FIELDS + field) * XDPFW_SUMMARY_SPACE + v;
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
					__u32 fam, __u8 skip)
{
	__u8 flags = r->flags & ~skip;

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
	return 1;
}

struct scan_ctx {
	struct classify_ctx *c;
	const struct xdpfw_bucket *b;
	__u32 fam;
	__u32 done; /* no later candidate (or chained bucket) can win */
};

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
	c->best_order = r->order;
	c->best_counter = r->counter;
	c->best_action = r->action;
	c->best_idx = idx;
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
	/* the first table outside the loop: a hit there (the common case) pays
	 * no loop */
	if (!visit_next_table(c) && (c->m[0] | c->m[1]))
		bpf_loop(XDPFW_MAX_TABLES, visit_table, c, 0);
	return before - popcount64(c->m[0]) - popcount64(c->m[1]);
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

static __always_inline int verdict(__u8 action, struct xdpfw_stats *st, int drop_stat,
				   int pass_stat)
{
	if (action == XDPFW_ACTION_DROP) {
		st->c[drop_stat]++;
		return XDP_DROP;
	}
	st->c[pass_stat]++;
	return XDP_PASS;
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

static __always_inline void report_unmatched(struct xdp_md *ctx, const struct xdpfw_config *cfg,
					     struct xdpfw_stats *st, const struct xdpfw_pkt *pkt,
					     __u32 len)
{
	struct xdpfw_event ev;

	if (!cfg->event_cost_ns)
		return;
	if (!event_allowed(cfg)) {
		st->c[XDPFW_STAT_EVENTS_SUPPRESSED]++;
		return;
	}
	ev.timestamp_ns = bpf_ktime_get_ns();
	ev.ifindex = ctx->ingress_ifindex;
	ev.pkt_len = len;
	ev.family = pkt->family;
	ev.proto = pkt->proto;
	ev.tcp_flags = pkt->tcp_flags;
	ev.flags = (pkt->has_ports ? XDPFW_EVENT_HAS_PORTS : 0) |
		   (pkt->fragment ? XDPFW_EVENT_FRAGMENT : 0);
	ev.sport = pkt->sport;
	ev.dport = pkt->dport;
	__builtin_memcpy(ev.src, pkt->src, sizeof(ev.src));
	__builtin_memcpy(ev.dst, pkt->dst, sizeof(ev.dst));
	if (bpf_perf_event_output(ctx, &xdpfw_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev)))
		st->c[XDPFW_STAT_EVENTS_FAILED]++;
	else
		st->c[XDPFW_STAT_EVENTS_SENT]++;
}

SEC("xdp")
int xdpfw_main(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct xdpfw_pkt pkt = {};
	struct xdpfw_config *cfg;
	struct xdpfw_ruleset *rs;
	struct xdpfw_stats *st;
	__u32 zero = 0, slot;
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
	struct classify_ctx c = {
	    .rs = rs,
	    .pkt = &pkt,
	    .best_order = ORDER_NONE,
	    .slot = slot,
	};
	if (reason != PARSE_OK) {
		__u32 readable = pkt.readable;

		if (reason >= XDPFW_STAT_FIRST_MALFORMED && reason <= XDPFW_STAT_LAST_MALFORMED)
			st->c[reason]++;
		/* A malformed packet: the first rule whose readable fields match
		 * decides, through the view of the rule set blind to what the
		 * packet lacks (XDPFW_READ_NO_L4 or _NO_PROTO, tested as a range:
		 * one verifier state); when that rule needs a field the parser
		 * could not read, when no rule matches, or when not even the
		 * addresses were read, malformed_action does. */
		if (readable - 1 > XDPFW_READ_NO_PROTO - 1)
			goto malformed;
		c.slot = slot + XDPFW_SLOTS * readable;
		c.rs = bpf_map_lookup_elem(&xdpfw_rulesets, &c.slot);
		if (!c.rs)
			goto malformed;
		/* no L4: ports and ICMP; view 2: the protocol too */
		c.skip = XDPFW_CAND_L4 | ((readable >> 1) & XDPFW_CAND_PROTO);
		pkt.has_ports = 0;
	} else if (pkt.fragment) {
		st->c[XDPFW_STAT_FRAGMENTS]++;
	}

	count_probes(st, classify(&c));
	if (c.best_order != ORDER_NONE) {
		struct xdpfw_rule_counters *rc;

		if (c.skip) { /* malformed: does the rule need what was not read? */
			const struct xdpfw_cand *r = bpf_map_lookup_elem(&xdpfw_cands, &c.best_idx);

			if (!r || (r->flags & c.skip))
				goto malformed;
		}

		rc = bpf_map_lookup_elem(&xdpfw_rule_counters, &c.best_counter);
		if (rc) {
			rc->packets++;
			rc->bytes += len;
		}
		return verdict(c.best_action, st, XDPFW_STAT_MATCH_DROP, XDPFW_STAT_MATCH_PASS);
	}
	if (c.skip)
		goto malformed;
	report_unmatched(ctx, cfg, st, &pkt, len);
	return verdict(rs->default_action, st, XDPFW_STAT_DEFAULT_DROP, XDPFW_STAT_DEFAULT_PASS);
malformed:
	return verdict(rs->malformed_action, st, XDPFW_STAT_MALFORMED_DROP,
		       XDPFW_STAT_MALFORMED_PASS);
}

char LICENSE[] SEC("license") = "GPL";
