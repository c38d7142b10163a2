// SPDX-License-Identifier: GPL-2.0
/* xdpfw.bpf.c: the firewall's packet path. parse -> classify against the
 * active rule set (tuple space search, docs/DATAPATH.md) -> count -> verdict,
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

static __always_inline void port_classes(__u32 slot, const struct xdpfw_pkt *pkt, __u16 *sclass,
					 __u16 *dclass)
{
	__u32 base = slot * 2 * XDPFW_PORT_SPACE;
	__u32 idx;
	__u32 *c;

	idx = base + XDPFW_FIELD_SPORT * XDPFW_PORT_SPACE + pkt->sport;
	c = bpf_map_lookup_elem(&xdpfw_port_class, &idx);
	*sclass = c ? *c : 0;
	idx = base + XDPFW_FIELD_DPORT * XDPFW_PORT_SPACE + pkt->dport;
	c = bpf_map_lookup_elem(&xdpfw_port_class, &idx);
	*dclass = c ? *c : 0;
}

/* State of one walk over the shapes of a family (bpf_loop context). */
struct classify_ctx {
	const struct xdpfw_ruleset *rs;
	const struct xdpfw_pkt *pkt;
	__u64 best_order;
	__u32 best_slot;
	__u32 n;
	__u32 slot;
	__u16 sclass;
	__u16 dclass;
	__u8 best_action;
};

/* Returns the shape to visit at index i, or NULL when the walk is over. */
static __always_inline const struct xdpfw_shape *next_shape(struct classify_ctx *c, __u32 fam,
							    __u32 i)
{
	const struct xdpfw_shape *s;

	if (i >= c->n)
		return NULL;
	/* bpf_loop never passes i >= XDPFW_MAX_SHAPES; the mask proves it to the verifier */
	s = &c->rs->shapes[fam][i & (XDPFW_MAX_SHAPES - 1)];
	/* shapes are sorted by min_order: nothing better follows */
	if (c->best_order <= s->min_order)
		return NULL;
	return s;
}

#define FILL_KEY_HEAD(key, s, c)                                                                   \
	do {                                                                                       \
		(key).meta = (c)->slot | ((s)->flags << 1);                                        \
		(key).proto = ((s)->flags & XDPFW_SHAPE_PROTO) ? (c)->pkt->proto : 0;              \
		(key).src_plen = (s)->src_plen;                                                    \
		(key).dst_plen = (s)->dst_plen;                                                    \
		(key).sport_class = ((s)->flags & XDPFW_SHAPE_SPORT) ? (c)->sclass : 0;            \
		(key).dport_class = ((s)->flags & XDPFW_SHAPE_DPORT) ? (c)->dclass : 0;            \
	} while (0)

static __always_inline void take(struct classify_ctx *c, const struct xdpfw_match *m)
{
	if (m && m->order < c->best_order) {
		c->best_order = m->order;
		c->best_slot = m->rule_slot;
		c->best_action = m->action;
	}
}

static long visit_shape4(__u32 i, void *arg)
{
	struct classify_ctx *c = arg;
	const struct xdpfw_shape *s = next_shape(c, XDPFW_FAMILY_V4, i);
	struct xdpfw_key4 k;

	if (!s)
		return 1;
	if ((s->flags & XDPFW_SHAPE_L4) && !c->pkt->has_ports)
		return 0;
	FILL_KEY_HEAD(k, s, c);
	k.src = c->pkt->src[0] & s->src_mask[0];
	k.dst = c->pkt->dst[0] & s->dst_mask[0];
	take(c, bpf_map_lookup_elem(&xdpfw_rules_v4, &k));
	return 0;
}

static long visit_shape6(__u32 i, void *arg)
{
	struct classify_ctx *c = arg;
	const struct xdpfw_shape *s = next_shape(c, XDPFW_FAMILY_V6, i);
	const struct xdpfw_pkt *p = c->pkt;
	struct xdpfw_key6 k;

	if (!s)
		return 1;
	if ((s->flags & XDPFW_SHAPE_L4) && !p->has_ports)
		return 0;
	FILL_KEY_HEAD(k, s, c);
	k.src[0] = p->src[0] & s->src_mask[0];
	k.src[1] = p->src[1] & s->src_mask[1];
	k.src[2] = p->src[2] & s->src_mask[2];
	k.src[3] = p->src[3] & s->src_mask[3];
	k.dst[0] = p->dst[0] & s->dst_mask[0];
	k.dst[1] = p->dst[1] & s->dst_mask[1];
	k.dst[2] = p->dst[2] & s->dst_mask[2];
	k.dst[3] = p->dst[3] & s->dst_mask[3];
	take(c, bpf_map_lookup_elem(&xdpfw_rules_v6, &k));
	return 0;
}

/* Tuple space search: one hash lookup per shape of the packet's family,
 * best (priority, id) wins. Fills c->best_*; best_order stays ORDER_NONE
 * when nothing matched. */
static __always_inline void classify(struct classify_ctx *c)
{
	__u32 fam = c->pkt->family & 1;

	c->n = c->rs->nshapes[fam];
	if (!c->n)
		return;
	if (c->pkt->has_ports)
		port_classes(c->slot, c->pkt, &c->sclass, &c->dclass);
	if (fam == XDPFW_FAMILY_V4)
		bpf_loop(XDPFW_MAX_SHAPES, visit_shape4, c, 0);
	else
		bpf_loop(XDPFW_MAX_SHAPES, visit_shape6, c, 0);
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
	if (reason != PARSE_OK) {
		if (reason >= XDPFW_STAT_FIRST_MALFORMED && reason <= XDPFW_STAT_LAST_MALFORMED)
			st->c[reason]++;
		return verdict(rs->malformed_action, st, XDPFW_STAT_MALFORMED_DROP,
			       XDPFW_STAT_MALFORMED_PASS);
	}
	if (pkt.fragment)
		st->c[XDPFW_STAT_FRAGMENTS]++;

	struct classify_ctx c = {
	    .rs = rs,
	    .pkt = &pkt,
	    .best_order = ORDER_NONE,
	    .slot = slot,
	};
	classify(&c);
	if (c.best_order != ORDER_NONE) {
		struct xdpfw_rule_counters *rc;

		rc = bpf_map_lookup_elem(&xdpfw_rule_counters, &c.best_slot);
		if (rc) {
			rc->packets++;
			rc->bytes += len;
		}
		return verdict(c.best_action, st, XDPFW_STAT_MATCH_DROP, XDPFW_STAT_MATCH_PASS);
	}
	report_unmatched(ctx, cfg, st, &pkt, len);
	return verdict(rs->default_action, st, XDPFW_STAT_DEFAULT_DROP, XDPFW_STAT_DEFAULT_PASS);
}

char LICENSE[] SEC("license") = "GPL";
