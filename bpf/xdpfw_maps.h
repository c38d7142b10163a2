/* xdpfw_maps.h: the maps of the XDP program. Sizes marked "set at load" are
 * overridden by user space before load (plugin/datapath.cpp): the maps that
 * hold rules, counters and set elements are sized to what they hold, and a
 * program with larger (or smaller) ones replaces this one when that changes
 * (docs/DATAPATH.md, "Map sizes"). The sizes below are placeholders. */
#ifndef XDPFW_MAPS_H
#define XDPFW_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xdpfw.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpfw_config);
} xdpfw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPFW_SLOTS *XDPFW_VIEWS);
	__type(key, __u32);
	__type(value, struct xdpfw_ruleset);
} xdpfw_rulesets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set at load: blocks of XDPFW_SUMMARY_SPACE */
	__type(key, __u32);
	__type(value, struct xdpfw_tmask);
} xdpfw_summary SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* set at load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdpfw_key4);
	__type(value, struct xdpfw_bucket);
} xdpfw_buckets_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* set at load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdpfw_key6);
	__type(value, struct xdpfw_bucket);
} xdpfw_buckets_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set at load: counter index * 2 + slot */
	__type(key, __u32);
	__type(value, struct xdpfw_cand);
} xdpfw_cands SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1); /* set at load */
	__type(key, __u32);
	__type(value, struct xdpfw_rule_counters);
} xdpfw_rule_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpfw_stats);
} xdpfw_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpfw_event_bucket);
} xdpfw_event_bucket SEC(".maps");

/* Token buckets of rate rules. Shared by the CPUs, updated without a lock:
 * concurrent packets of one bucket may each see the same credit
 * (docs/DATAPATH.md, "Rate limits"). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1); /* set at load */
	__type(key, struct xdpfw_rate_key);
	__type(value, struct xdpfw_rate_state);
} xdpfw_rate SEC(".maps");

/* Address sets: the tag of each set id (0: no such set), and every element
 * of every set (xdpfw.h, struct xdpfw_set_key): the prefixes in a trie, the
 * full-length addresses in a hash. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPFW_MAX_SETS);
	__type(key, __u32);
	__type(value, __u32);
} xdpfw_set_tags SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1); /* set at load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdpfw_set_key);
	__type(value, struct xdpfw_set_elem);
} xdpfw_sets SEC(".maps");
/* The full-length elements (a v4 /32, a v6 /128) are kept here instead, keyed
 * as in the trie: a ban list of hosts costs one hash lookup, not a trie walk
 * of its depth. An address is looked up here first; the trie only on a miss.
 * A full-length element is the longest match the trie could give, so the
 * answer is the trie's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* set at load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdpfw_set_key);
	__type(value, struct xdpfw_set_elem);
} xdpfw_set_hosts SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xdpfw_events SEC(".maps");

/* Never read by the program. User space replaces its one element after each
 * rule-set flip: an update of a map-of-maps waits for an RCU grace period,
 * after which no packet still uses the previous slot. */
struct xdpfw_sync_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xdpfw_sync_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct xdpfw_sync_inner);
} xdpfw_sync SEC(".maps") = {
    .values = {&xdpfw_sync_inner},
};

#endif /* XDPFW_MAPS_H */
