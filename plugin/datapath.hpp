// datapath.hpp: what the firewall needs of its packet path (Datapath),
// and the kernel's (KernelDatapath): the loaded XDP program and its maps,
// driven through the libbpf skeleton. The kernel one owns the rule-set flip
// (two slots, diffs, RCU wait), the rule counters' indexes, reading counters
// summed over CPUs, and the perf buffer of events. Unit tests use a fake
// (tests/common/fakes.hpp).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "flat_map.hpp"
#include "rule.hpp"
#include "rule_compiler.hpp"
#include "xdpfw.h"

struct xdpfw_bpf;  // the skeleton (xdpfw.skel.h)
struct bpf_map;
struct perf_buffer;

namespace xdpfw {

// A kernel operation failed; the message says which and why.
class DatapathError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Limits, not allocations: the maps are sized to what they hold and resized
// as that changes (docs/DATAPATH.md, "Map sizes").
struct DatapathOptions {
  uint32_t max_rules = XDPFW_DEFAULT_MAX_RULES;      // rule counters (one index per rule)
  uint32_t max_entries = XDPFW_DEFAULT_MAX_ENTRIES;  // buckets per family map, both slots
  // A folder on a bpf filesystem: the maps are pinned there, and maps found
  // there from an earlier run are reused (rules, counters, active slot).
  std::string pin_dir;
  // The event burst the rings must hold (event-burst at start): each CPU's
  // ring is sized for its share of it (event_ring_pages).
  uint64_t event_burst = 1000;
  // Create conntrack_table (plugin/conntrack.hpp) in this namespace when a
  // ct rule is installed. The agent does; tests and benchmarks that run in
  // the host's namespace must not leave it there.
  bool enable_conntrack = false;
  // Elements of all address sets together (xdpfw_sets and xdpfw_set_hosts
  // each hold at most this many).
  uint64_t max_set_elements = XDPFW_DEFAULT_SET_ELEMENTS;
};

struct RuleCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

struct Stats {
  std::array<uint64_t, XDPFW_STAT_MAX> c{};
  uint64_t operator[](xdpfw_stat s) const { return c[s]; }
};

// Name of a counter as shown to users (e.g. "ipv4_truncated").
const char* stat_name(xdpfw_stat s);

// The packet path as the firewall drives it.
class Datapath {
 public:
  virtual ~Datapath() = default;

  // True when the rules and counters of an earlier run were found and kept.
  virtual bool resumed() const = 0;
  // Set when state of an earlier run was found but had another layout
  // (another build's maps, another max-rules): why, e.g.
  // "xdpfw_rule_counters has max_entries 100000, this agent 1000". It was
  // replaced (resumed() is false): counters start from zero.
  virtual const std::string& replaced_pins() const = 0;
  // Where that state lives ("" for nowhere), for messages.
  virtual const std::string& pin_dir() const = 0;
  virtual CompileLimits limits() const = 0;

  // Replaces the rule set. Packets see the old set or the new one, never a
  // mix. Throws CompileError (nothing changed) or DatapathError.
  virtual void apply(const std::vector<Rule>& rules, const Policy& policy) = 0;
  // One rule added or removed without a recompile; false (nothing changed)
  // when it does not fit: call apply() then. The rule must be valid, with id
  // and priority; the policy is unchanged. Throws DatapathError.
  virtual bool add_in_place(const Rule& r) = 0;
  virtual bool remove_in_place(const Rule& r) = 0;

  // Finishes, without waiting, what the last change left for later (the
  // kernel's: bringing the old slot up to date once its grace period is
  // over), so that the next change does not meet it. The agent's loop
  // calls it on a timer. Throws DatapathError.
  virtual void settle() {}

  virtual std::unordered_map<uint32_t, RuleCounters> all_rule_counters() const = 0;
  virtual Stats stats() const = 0;

  // Address sets (plugin/address_sets.hpp, bpf/xdpfw.h): elements of
  // xdpfw_sets (or xdpfw_set_hosts) under a tag, and the live tag of each set id. Throw
  // DatapathError.
  virtual uint64_t max_set_elements() const = 0;
  // Room for n more elements, made at once (a set load or a sync writes
  // many: one resize instead of one per doubling).
  virtual void reserve_elements(uint64_t n) { (void)n; }
  // fresh: a new element (hits from zero); else its hits are kept.
  virtual void write_element(uint32_t tag, const Prefix& p, uint64_t expires_ns, bool fresh) = 0;
  virtual void erase_element(uint32_t tag, const Prefix& p) = 0;
  virtual uint64_t element_hits(uint32_t tag, const Prefix& p) const = 0;
  virtual uint32_t set_tag(uint16_t set) const = 0;
  // Returns once no packet can still be looking at the old tag's elements.
  virtual void switch_set_tag(uint16_t set, uint32_t tag) = 0;
  // Every element (tag, prefix): what the sets' sync sweeps.
  virtual std::vector<std::pair<uint32_t, Prefix>> set_elements() const = 0;

  // Unmatched-packet events: at most events_per_sec on average with bursts
  // of up to burst. 0 turns events off.
  virtual void set_event_limit(uint64_t events_per_sec, uint64_t burst) = 0;
  // A descriptor that becomes readable when events wait; read_events hands
  // each waiting event to each and answers how many were lost (overwritten
  // before they were read) since the last call.
  virtual int events_fd() = 0;
  virtual uint64_t read_events(const std::function<void(const xdpfw_event&)>& each) = 0;
};

class KernelDatapath : public Datapath {
 public:
  explicit KernelDatapath(const DatapathOptions& opts = {});
  ~KernelDatapath() override;
  KernelDatapath(const KernelDatapath&) = delete;
  KernelDatapath& operator=(const KernelDatapath&) = delete;

  // The program in use. It changes when the maps are resized: a program
  // with maps of the new sizes replaces it (see on_program_change).
  int prog_fd() const;
  int events_map_fd() const;

  // What the maps sized to their content have room for.
  struct Capacity {
    uint32_t counters = 0;        // xdpfw_rule_counters; xdpfw_cands holds 2 records each
    uint32_t buckets[2] = {};     // xdpfw_buckets_v4 and _v6: both slots, every view
    uint32_t summary_blocks = 0;  // xdpfw_summary, in blocks of XDPFW_SUMMARY_SPACE masks
    uint32_t set_hosts = 0;       // xdpfw_set_hosts
    uint32_t rate = 0;            // xdpfw_rate
    bool operator==(const Capacity&) const = default;
  };
  const Capacity& capacity() const { return cap_; }
  // Times the maps were resized so far.
  uint64_t resizes() const { return resizes_; }
  // Called with the new program's fd once it holds everything the old one
  // did, before the old one goes: whoever attached the old program moves
  // its links (bpf_link_update, one atomic switch per interface).
  void on_program_change(std::function<void(int prog_fd)> f) { program_changed_ = std::move(f); }
  // Pinned maps of an earlier run found in pin_dir and reused.
  bool resumed() const override { return resumed_; }
  const std::string& replaced_pins() const override { return replaced_; }
  const std::string& pin_dir() const override { return opts_.pin_dir; }
  CompileLimits limits() const override;

  void apply(const std::vector<Rule>& rules, const Policy& policy) override;
  uint64_t generation() const { return generation_; }

  // One rule added or removed in place, without a recompile or a flip
  // (docs/DATAPATH.md, "Updates in place"): both slots get the same few
  // writes, the active one in an order that every packet sees whole (the
  // rule entirely or not at all). Returns false, with nothing changed, when
  // the change does not fit in place (a new table, a chain, a duplicate, a
  // new best rule of a table, slots not in sync): call apply() then. The rule
  // must be valid, with id and priority; the policy is unchanged. Throws
  // DatapathError (the next apply() rewrites both slots).
  bool add_in_place(const Rule& r) override;
  bool remove_in_place(const Rule& r) override;
  // Also shrinks maps that hold far less than they have room for.
  void settle() override;

  // What the slots hold (in sync after apply() returns and its catch-up is
  // done), for tests: the same structure as a compile, changed in place.
  const CompiledRuleset& compiled() const { return *slots_[active_].compiled; }
  // Candidate records written by recompiles so far (a slot brought to the
  // next set writes only the records that changed), for tests.
  uint64_t records_written() const { return records_written_; }

  std::optional<RuleCounters> rule_counters(uint32_t rule_id) const;
  std::unordered_map<uint32_t, RuleCounters> all_rule_counters() const override;
  Stats stats() const override;
  // Kernel memory held by the program's maps, as the kernel accounts it
  // (memlock in /proc/self/fdinfo), in bytes.
  uint64_t map_memory() const;

  // Pages per CPU of the events ring: room for twice the CPU's share of
  // the event burst (a burst arrives faster than any reader), at least
  // 1 MiB (about 12,000 events), at most 16 MiB; halved until it fits under
  // the locked-memory limit of an agent without CAP_IPC_LOCK.
  size_t event_ring_pages() const;
  uint64_t max_set_elements() const override { return opts_.max_set_elements; }
  void reserve_elements(uint64_t n) override;
  void write_element(uint32_t tag, const Prefix& p, uint64_t expires_ns, bool fresh) override;
  void erase_element(uint32_t tag, const Prefix& p) override;
  uint64_t element_hits(uint32_t tag, const Prefix& p) const override;
  uint32_t set_tag(uint16_t set) const override;
  void switch_set_tag(uint16_t set, uint32_t tag) override;
  std::vector<std::pair<uint32_t, Prefix>> set_elements() const override;

  // The rate is split evenly across CPUs.
  void set_event_limit(uint64_t events_per_sec, uint64_t burst) override;
  // The perf buffer is opened by the first call (tests that read the
  // events map themselves never call these).
  int events_fd() override;
  uint64_t read_events(const std::function<void(const xdpfw_event&)>& each) override;

 private:
  int elements_fd(const Prefix& p) const;  // the map of p's element
  // The kinds of elements (bpf/xdpfw.h, enum xdpfw_set_kinds) under tag,
  // and the one write of xdpfw_set_tags[set] (no wait for readers).
  uint32_t set_kinds(uint32_t tag) const;
  void write_set_tag(uint16_t set, uint32_t tag);
  // An element of tag came (+1) or went (-1): a set whose live tag gains
  // its first element of a kind, or loses its last, has its kinds rewritten.
  void count_element(uint32_t tag, const Prefix& p, int delta);
  void count_set_elements();  // at resume: what the pinned maps hold
  struct SlotState {
    // What the slot's maps hold; in sync, both slots share one object.
    std::shared_ptr<CompiledRuleset> compiled = std::make_shared<CompiledRuleset>();
    bool known = true;  // false after a failed write or a resume: rewrite fully
    // The xdpfw_summary block of each (family, field) the slot reads; -1: none.
    int32_t block[2][XDPFW_SUMMARY_FIELDS] = {{-1, -1, -1}, {-1, -1, -1}};
    uint32_t counted[2] = {};  // buckets per family while not known (resume)
  };
  ::xdpfw_bpf* open_program(const Capacity& c, const ::xdpfw_bpf* shared) const;
  std::optional<Capacity> pinned_capacity() const;
  uint32_t slot_buckets(uint32_t slot, int fam) const;
  uint32_t slot_blocks(uint32_t slot) const;
  uint32_t host_elements() const;
  // Room for the active slot as it is and next in the other one (in sync:
  // next in both).
  // next_rate: the rate buckets next may fill (see rate_buckets).
  Capacity need(const CompiledRuleset* next, uint32_t next_rate) const;
  // Resizes when need does not fit (grow), or, with shrink, when it takes
  // far less than there is.
  void fit(const Capacity& need, bool shrink = false, bool one_more = false);
  Capacity wanted(const Capacity& need, bool shrink, bool one_more) const;
  // loaded: a program opened for want and loaded already (settle's).
  void resize(const Capacity& want, ::xdpfw_bpf* loaded = nullptr);
  void compact(::xdpfw_bpf* loaded = nullptr);
  void copy_elements(const ::xdpfw_bpf* from, ::xdpfw_bpf* to) const;
  void switch_from(::xdpfw_bpf* old, const std::vector<char>& counted,
                   const std::vector<uint32_t>& old_index, bool renumbered);
  Capacity compact_size() const;
  void repin_sized();
  void assign_blocks(uint32_t slot, const CompiledRuleset& next, bool full,
                     bool keep[2][XDPFW_SUMMARY_FIELDS]);

  void write_slot(uint32_t slot, const std::shared_ptr<CompiledRuleset>& next);
  void write_delta(uint32_t slot, const CompiledDelta& d);
  void write_header(uint32_t slot, uint32_t view, const xdpfw_ruleset& h);
  bool in_sync();
  void start_grace();
  void reap();
  void drain_retired();
  void purge_slot(uint32_t slot);
  void wait_for_readers();
  void finish_catch_up();
  uint32_t cand_index(uint32_t slot, uint32_t rule_id) const;
  xdpfw_bucket to_bucket(uint32_t slot, const Bucket& b) const;
  uint32_t alloc_counter_index();
  void write_config();
  void need_conntrack(const Rule& r);
  std::vector<bpf_map*> pinned_maps() const;
  std::string pin_path(const bpf_map* m) const;
  void pin_maps();
  std::string pins_mismatch() const;
  void repin();
  void resume();

  DatapathOptions opts_;
  ::xdpfw_bpf* skel_ = nullptr;
  Capacity cap_;
  uint64_t resizes_ = 0;
  uint32_t live_rate_ = 0;  // rate buckets the live set may fill (rate_buckets)
  std::function<void(int)> program_changed_;
  // A program for smaller maps (or a compaction) being verified on a thread.
  struct BackgroundLoad {
    Capacity want;
    bool compact = false;
    ::xdpfw_bpf* skel = nullptr;
    std::thread thread;
    std::atomic<bool> done{false};
    int rc = 0;
  };
  std::unique_ptr<BackgroundLoad> bg_;
  int ncpus_ = 0;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> records_written_{0};  // also by the catch-up's thread
  uint32_t active_ = 0;
  SlotState slots_[XDPFW_SLOTS];
  FlatMap<uint32_t, uint32_t> counter_index_;  // rule id -> its counters' index
  std::vector<uint32_t> free_counter_indexes_;
  // The old slot's update, due once the grace period after a flip is over.
  struct CatchUp {
    uint32_t slot;
    std::shared_ptr<CompiledRuleset> next;
    std::vector<uint32_t> wanted;  // ids of the rules it keeps, sorted
  };
  std::optional<CatchUp> catch_up_;
  // Counter indexes of rules removed in place, free after an RCU grace period
  // that started after the removal: waiting for one, and covered by the
  // one running.
  std::vector<uint32_t> retired_, grace_covers_;
  std::thread grace_;
  std::atomic<bool> grace_ok_{false};
  std::atomic<bool> grace_done_{true};
  std::atomic<bool> catch_up_tried_{false};  // the thread wrote (or tried) the old slot
  uint32_t next_counter_index_ = 0;
  // Elements in the maps per key tag (the tag and the family bit): which
  // maps a lookup asks (xdpfw_set_tags). Exact: every write and erase goes
  // through this object, and resume() counts what pins brought.
  struct ElementCount {
    uint32_t hosts = 0;     // in xdpfw_set_hosts
    uint32_t prefixes = 0;  // in xdpfw_sets
  };
  std::unordered_map<uint32_t, ElementCount> element_counts_;
  std::unordered_map<uint16_t, uint32_t> live_tags_;  // set id -> its tag (kinds aside)
  xdpfw_config config_{};
  bool resumed_ = false;
  std::string replaced_;
  std::string no_ct_;          // why ct rules cannot be used ("" : they can)
  bool conntrack_on_ = false;  // conntrack_table made by this process
  ::perf_buffer* events_ = nullptr;
  mutable int events_fd_ = -1;  // the events map, duplicated (events_map_fd)
  const std::function<void(const xdpfw_event&)>* each_event_ = nullptr;
  uint64_t events_lost_ = 0;
};

}  // namespace xdpfw
