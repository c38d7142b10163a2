// datapath.cpp: loading, the double-buffered rule-set flip and counters.
#include "datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <type_traits>
#include <utility>

#include <linux/perf_event.h>

#include "conntrack.hpp"
#include "xdpfw.skel.h"

namespace xdpfw {
namespace {

std::string errstr(int err) {
  return std::strerror(err < 0 ? -err : err);
}

void check(int rc, const std::string& what) {
  if (rc < 0) throw DatapathError(what + ": " + errstr(errno ? errno : rc));
}

void update_batch(int fd, const void* keys, const void* vals, size_t n, const char* what) {
  if (n == 0) return;
  LIBBPF_OPTS(bpf_map_batch_opts, o);
  __u32 count = static_cast<__u32>(n);
  errno = 0;
  check(bpf_map_update_batch(fd, keys, vals, &count, &o), std::string("update ") + what);
}

// Every element of a hash map (plain or LRU) into another of the same key
// and value sizes.
void copy_hash(int from, int to, size_t key_size, size_t value_size, const char* what) {
  constexpr uint32_t chunk = 4096;
  std::vector<char> keys(chunk * key_size), vals(chunk * value_size);
  uint64_t in = 0, out = 0;  // the kernel's cursor (a bucket index)
  for (bool first = true;; first = false) {
    __u32 count = chunk;
    LIBBPF_OPTS(bpf_map_batch_opts, o);
    errno = 0;
    int rc = bpf_map_lookup_batch(from, first ? nullptr : &in, &out, keys.data(), vals.data(),
                                  &count, &o);
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != ENOENT)
      throw DatapathError(std::string("read ") + what + ": " + errstr(err));
    update_batch(to, keys.data(), vals.data(), count, what);
    if (err == ENOENT) return;
    in = out;
  }
}

// Entries 0 to n-1 of an array map, n x value_size bytes.
std::vector<char> read_array(int fd, uint32_t n, size_t value_size, const char* what) {
  std::vector<__u32> keys(n);
  std::vector<char> vals(n * value_size);
  constexpr uint32_t chunk = 65536;
  for (uint32_t i = 0; i < n; i += chunk) {
    __u32 count = std::min(chunk, n - i);
    LIBBPF_OPTS(bpf_map_batch_opts, o);
    __u32 in = i - 1, out = 0;
    errno = 0;
    int rc = bpf_map_lookup_batch(fd, i == 0 ? nullptr : &in, &out, &keys[i], &vals[i * value_size],
                                  &count, &o);
    if (rc < 0 && errno != ENOENT)
      throw DatapathError(std::string("read ") + what + ": " + errstr(errno));
  }
  return vals;
}

void write_array(int fd, const std::vector<char>& vals, uint32_t n, const char* what) {
  std::vector<__u32> keys(n);
  for (uint32_t i = 0; i < n; ++i) keys[i] = i;
  update_batch(fd, keys.data(), vals.data(), n, what);
}

// Entries 0 to n-1 of an array map, read from one (returned) and written to
// the other.
std::vector<char> copy_array(int from, int to, uint32_t n, size_t value_size, const char* what) {
  std::vector<char> vals = read_array(from, n, value_size, what);
  write_array(to, vals, n, what);
  return vals;
}

// Per CPU, what now counts beyond before, added to into.
void add_counted(const char* now, const char* before, std::vector<xdpfw_rule_counters>& into) {
  for (size_t c = 0; c < into.size(); ++c) {
    xdpfw_rule_counters x, y;
    std::memcpy(&x, now + c * sizeof x, sizeof x);
    std::memcpy(&y, before + c * sizeof y, sizeof y);
    into[c].packets += x.packets - y.packets;
    into[c].bytes += x.bytes - y.bytes;
  }
}

// Capacity for need: as it is while need fits (and, with shrink, is not
// far below it); else an eighth more than need, in steps of 64, and at
// least min. The slack keeps a rule added and deleted in a loop from
// resizing each time.
uint32_t room(uint32_t need, uint32_t now, uint32_t min, bool shrink) {
  if (now && need <= now && !(shrink && now > min && need < now / 4)) return now;
  uint64_t want = (static_cast<uint64_t>(need) * 9 / 8 + 63) / 64 * 64;
  return static_cast<uint32_t>(std::max<uint64_t>(want, min));
}

// The same for a hash map without preallocation: its elements take memory
// as they come, and its bucket array is max_entries rounded up to a power of
// two (16 bytes each), so the power of two itself is the size to take.
uint32_t hash_room(uint32_t need, uint32_t now, uint32_t min, bool shrink) {
  uint32_t r = room(need, now, min, shrink);
  if (now && r == now) return now;
  uint64_t p = 1;
  while (p < r) p <<= 1;
  return static_cast<uint32_t>(std::min<uint64_t>(p, 1u << 31));
}

void delete_batch(int fd, const void* keys, size_t n, const char* what) {
  if (n == 0) return;
  LIBBPF_OPTS(bpf_map_batch_opts, o);
  __u32 count = static_cast<__u32>(n);
  errno = 0;
  check(bpf_map_delete_batch(fd, keys, &count, &o), std::string("delete ") + what);
}

struct Deletion {};

// Writes (or, with V = Deletion, deletes) of one map, sent in batches.
template <typename K, typename V>
struct Batch {
  static constexpr size_t kSize = 8192;
  int fd;
  const char* what;
  std::vector<K> keys{};
  std::vector<V> values{};
  void add(const K& k, const V& v = {}) {
    keys.push_back(k);
    if constexpr (!std::is_same_v<V, Deletion>) values.push_back(v);
    if (keys.size() >= kSize) flush();
  }
  void flush() {
    if constexpr (std::is_same_v<V, Deletion>)
      delete_batch(fd, keys.data(), keys.size(), what);
    else
      update_batch(fd, keys.data(), values.data(), keys.size(), what);
    keys.clear();
    values.clear();
  }
};

}  // namespace

const char* stat_name(xdpfw_stat s) {
#define XDPFW_STAT_NAME(e, name) #name,
  static constexpr const char* names[] = {XDPFW_STATS(XDPFW_STAT_NAME)};
#undef XDPFW_STAT_NAME
  static_assert(std::size(names) == XDPFW_STAT_MAX);
  return s >= 0 && s < XDPFW_STAT_MAX ? names[s] : "unknown";
}

namespace {
// The smallest maps: what an agent with no rules holds.
constexpr uint32_t kMinCounters = 256, kMinBuckets = 256, kMinSetHosts = 256, kMinRate = 64;
}  // namespace

KernelDatapath::KernelDatapath(const DatapathOptions& opts) : opts_(opts) {
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) throw DatapathError("cannot count possible CPUs: " + errstr(ncpus_));
  if (opts_.max_rules == 0 || opts_.max_entries < XDPFW_SLOTS)
    throw DatapathError("max_rules and max_entries must be positive");
  if (opts_.max_set_elements == 0 || opts_.max_set_elements > (1u << 31))
    throw DatapathError("max_set_elements must be 1 to 2^31");
  no_ct_ = conntrack_unavailable();
  cap_.counters = kMinCounters;
  cap_.buckets[0] = cap_.buckets[1] = kMinBuckets;
  cap_.set_hosts = kMinSetHosts;
  cap_.rate = kMinRate;
  if (!opts_.pin_dir.empty())
    if (auto pinned = pinned_capacity()) cap_ = *pinned;
  skel_ = open_program(cap_, nullptr);
  try {
    if (!opts_.pin_dir.empty()) pin_maps();
    errno = 0;
    int rc = xdpfw_bpf__load(skel_);
    if (rc < 0 && resumed_)
      throw DatapathError("cannot reuse the maps pinned in " + opts_.pin_dir + " (" +
                          errstr(errno ? errno : rc) + "); remove them (rm -r " + opts_.pin_dir +
                          ") to start with fresh maps");
    check(rc, "load the XDP program (needs root or CAP_BPF+CAP_NET_ADMIN)");
    config_.layout = XDPFW_MAP_LAYOUT;
    if (!replaced_.empty()) repin();
    if (resumed_) {
      resume();
    } else {
      // Both slots start as the empty rule set under the default policy
      // (fresh maps are all zero: only the headers need writing).
      auto empty = std::make_shared<CompiledRuleset>(compile_rules({}, Policy{}, limits()));
      write_slot(0, empty);
      write_slot(1, empty);
      write_config();
    }
  } catch (...) {
    xdpfw_bpf__destroy(skel_);
    throw;
  }
}

// The program with its maps sized for c. With shared, the maps that do not
// depend on the content (config, statistics, events, the sets' tags and
// trie) are that program's own, not new ones. The rule-set headers are
// each program's own: they name summary blocks of its own map.
::xdpfw_bpf* KernelDatapath::open_program(const Capacity& c, const ::xdpfw_bpf* shared) const {
  ::xdpfw_bpf* s = xdpfw_bpf__open();
  if (!s) throw DatapathError("cannot open the BPF object: " + errstr(errno));
  try {
    // Without the kfunc the program's ct code is dead, and the verifier
    // drops it: the program loads on any kernel.
    s->rodata->xdpfw_ct_ok = no_ct_.empty();
    auto size = [](bpf_map* m, uint64_t n) {
      check(bpf_map__set_max_entries(m, static_cast<uint32_t>(std::max<uint64_t>(n, 1))),
            std::string("size ") + bpf_map__name(m));
    };
    size(s->maps.xdpfw_buckets_v4, c.buckets[0]);
    size(s->maps.xdpfw_buckets_v6, c.buckets[1]);
    size(s->maps.xdpfw_rule_counters, c.counters);
    size(s->maps.xdpfw_cands, 2ull * c.counters);
    size(s->maps.xdpfw_summary, static_cast<uint64_t>(c.summary_blocks) * XDPFW_SUMMARY_SPACE);
    size(s->maps.xdpfw_set_hosts, c.set_hosts);
    size(s->maps.xdpfw_rate, c.rate);
    // A trie without preallocation takes memory per element: its size is
    // the limit.
    size(s->maps.xdpfw_sets, opts_.max_set_elements);
    if (shared) {
      std::pair<bpf_map*, const bpf_map*> same[] = {
          {s->maps.xdpfw_config, shared->maps.xdpfw_config},
          {s->maps.xdpfw_stats, shared->maps.xdpfw_stats},
          {s->maps.xdpfw_event_bucket, shared->maps.xdpfw_event_bucket},
          {s->maps.xdpfw_events, shared->maps.xdpfw_events},
          {s->maps.xdpfw_set_tags, shared->maps.xdpfw_set_tags},
          {s->maps.xdpfw_sets, shared->maps.xdpfw_sets}};
      for (auto [mine, theirs] : same)
        check(bpf_map__reuse_fd(mine, bpf_map__fd(theirs)),
              std::string("reuse ") + bpf_map__name(mine));
    }
  } catch (...) {
    xdpfw_bpf__destroy(s);
    throw;
  }
  return s;
}

// The sizes of maps pinned by an earlier run of this layout (nullopt: none,
// or another layout, which is replaced: docs/DATAPATH.md, "Map sizes").
std::optional<KernelDatapath::Capacity> KernelDatapath::pinned_capacity() const {
  auto info = [&](const char* name) -> std::optional<bpf_map_info> {
    int fd = bpf_obj_get((opts_.pin_dir + "/" + name).c_str());
    if (fd < 0) return std::nullopt;
    bpf_map_info i{};
    __u32 len = sizeof i;
    int rc = bpf_obj_get_info_by_fd(fd, &i, &len);
    xdpfw_config c{};
    __u32 zero = 0;
    bool ours = std::string(name) != "xdpfw_config" ||
                (bpf_map_lookup_elem(fd, &zero, &c) == 0 && c.layout == XDPFW_MAP_LAYOUT);
    close(fd);
    if (rc < 0 || !ours) return std::nullopt;
    return i;
  };
  if (!info("xdpfw_config")) return std::nullopt;
  auto counters = info("xdpfw_rule_counters"), v4 = info("xdpfw_buckets_v4"),
       v6 = info("xdpfw_buckets_v6"), summary = info("xdpfw_summary"),
       hosts = info("xdpfw_set_hosts"), rate = info("xdpfw_rate");
  if (!counters || !v4 || !v6 || !summary || !hosts || !rate) return std::nullopt;
  Capacity c;
  c.counters = counters->max_entries;
  c.buckets[0] = v4->max_entries;
  c.buckets[1] = v6->max_entries;
  c.summary_blocks = summary->max_entries / XDPFW_SUMMARY_SPACE;
  c.set_hosts = hosts->max_entries;
  c.rate = rate->max_entries;
  return c;
}

KernelDatapath::~KernelDatapath() {
  if (grace_.joinable()) grace_.join();
  if (bg_) {
    bg_->thread.join();
    xdpfw_bpf__destroy(bg_->skel);
  }
  if (events_) perf_buffer__free(events_);
  if (events_fd_ >= 0) close(events_fd_);
  xdpfw_bpf__destroy(skel_);
}

// The maps that carry state across restarts: rules, counters, the active
// slot. (The sync maps and the perf array are the process's own.)
std::vector<bpf_map*> KernelDatapath::pinned_maps() const {
  return {
      skel_->maps.xdpfw_config,        skel_->maps.xdpfw_rulesets,   skel_->maps.xdpfw_summary,
      skel_->maps.xdpfw_buckets_v4,    skel_->maps.xdpfw_buckets_v6, skel_->maps.xdpfw_cands,
      skel_->maps.xdpfw_rule_counters, skel_->maps.xdpfw_stats,      skel_->maps.xdpfw_event_bucket,
      skel_->maps.xdpfw_rate,          skel_->maps.xdpfw_set_tags,   skel_->maps.xdpfw_sets,
      skel_->maps.xdpfw_set_hosts};
}

std::string KernelDatapath::pin_path(const bpf_map* m) const {
  return opts_.pin_dir + "/" + bpf_map__name(m);
}

// Pins reusable as they are are handed to libbpf, which opens them at load.
// Pins of another layout (another build, another max-rules) are left alone
// until the new program has loaded, then replaced (repin).
void KernelDatapath::pin_maps() {
  replaced_ = pins_mismatch();
  if (!replaced_.empty()) return;
  for (bpf_map* m : pinned_maps()) {
    std::string path = pin_path(m);
    if (access(path.c_str(), F_OK) == 0) resumed_ = true;
    check(bpf_map__set_pin_path(m, path.c_str()), "pin " + path);
  }
}

// Why the pins in pin_dir cannot be reused as they are: the first map of
// another type or size, the config of another XDPFW_MAP_LAYOUT, or a map
// missing beside the others. "" when they can, or when there are none.
std::string KernelDatapath::pins_mismatch() const {
  std::string differs, missing;
  bool found = false;
  for (bpf_map* m : pinned_maps()) {
    std::string path = pin_path(m), name = bpf_map__name(m);
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      if (errno != ENOENT)
        throw DatapathError("cannot open the pinned map " + path + ": " + errstr(errno));
      if (missing.empty()) missing = name + " is missing";
      continue;
    }
    found = true;
    bpf_map_info info{};
    __u32 len = sizeof info;
    std::string diff;
    auto field = [&](const char* what, uint64_t was, uint64_t now) {
      if (was != now && diff.empty())
        diff = name + " has " + what + " " + std::to_string(was) + ", this agent " +
               std::to_string(now);
    };
    if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
      diff = name + " is not a map";
    } else {
      field("type", info.type, bpf_map__type(m));
      field("key size", info.key_size, bpf_map__key_size(m));
      field("value size", info.value_size, bpf_map__value_size(m));
      field("max_entries", info.max_entries, bpf_map__max_entries(m));
      field("flags", info.map_flags, bpf_map__map_flags(m));
      xdpfw_config c{};
      __u32 zero = 0;
      if (diff.empty() && m == skel_->maps.xdpfw_config && bpf_map_lookup_elem(fd, &zero, &c) == 0)
        field("layout", c.layout, XDPFW_MAP_LAYOUT);
    }
    close(fd);
    if (differs.empty()) differs = diff;
  }
  if (!found) return "";
  return differs.empty() ? missing : differs;
}

// After a load beside pins of another layout: the old pins go (with any
// xdpfw_ map an older layout had and this one has not), the new maps take
// their names. An old program still attached through pinned links
// (persistent mode) keeps its own maps, and filters, until its links move to
// this program.
void KernelDatapath::repin() {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(opts_.pin_dir)) {
    std::string path = e.path().string();
    if (e.path().filename().string().rfind("xdpfw_", 0) == 0 && unlink(path.c_str()) != 0 &&
        errno != ENOENT)
      throw DatapathError("cannot remove the old pin " + path + ": " + errstr(errno));
  }
  for (bpf_map* m : pinned_maps()) {
    errno = 0;
    check(bpf_map__pin(m, pin_path(m).c_str()), "pin " + pin_path(m));
  }
}

// Rebuilds what user space knows from the reused maps: the active slot and
// generation, and which counter index each rule id has (from the active
// slot's entries). Both slots are then treated as unknown: the next apply
// rewrites the standby one fully, flips, and rewrites the other.
void KernelDatapath::resume() {
  __u32 zero = 0;
  errno = 0;
  check(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xdpfw_config), &zero, &config_),
        "read xdpfw_config");
  active_ = config_.active_slot & 1;
  xdpfw_ruleset hdr{};
  check(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xdpfw_rulesets), &active_, &hdr),
        "read xdpfw_rulesets");
  generation_ = hdr.generation;
  // The summary blocks the active slot reads stay its own.
  for (int fam = 0; fam < 2; ++fam)
    for (int f = 0; f < XDPFW_SUMMARY_FIELDS; ++f)
      if ((hdr.summaries[fam] >> f) & 1) slots_[active_].block[fam][f] = hdr.summary_block[fam][f];
  // Every rule of the active slot sits in a bucket; its candidate record
  // names its id (the low half of order) and its counter index.
  int cands_fd = bpf_map__fd(skel_->maps.xdpfw_cands);
  auto collect = [&](bpf_map* map, auto key_type) {
    using K = decltype(key_type);
    int fd = bpf_map__fd(map);
    K k{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      xdpfw_bucket b{};
      ++slots_[next.slot % XDPFW_SLOTS].counted[std::is_same_v<K, xdpfw_key6>];
      if (next.slot == active_ && bpf_map_lookup_elem(fd, &next, &b) == 0)
        for (uint32_t j = 0; j < b.n && j < XDPFW_BUCKET_SIZE; ++j) {
          xdpfw_cand c{};
          if (bpf_map_lookup_elem(cands_fd, &b.cand[j], &c) == 0)
            counter_index_[static_cast<uint32_t>(c.order)] = c.counter;
        }
      k = next;
      prev = &k;
    }
  };
  collect(skel_->maps.xdpfw_buckets_v4, xdpfw_key4{});
  collect(skel_->maps.xdpfw_buckets_v6, xdpfw_key6{});
  std::set<uint32_t> used;
  for (const auto& [id, slot] : counter_index_) used.insert(slot);
  next_counter_index_ = used.empty() ? 0 : *used.rbegin() + 1;
  for (uint32_t s = 0; s < next_counter_index_; ++s)
    if (!used.count(s)) free_counter_indexes_.push_back(s);
  slots_[0].known = slots_[1].known = false;
  count_set_elements();
}

uint64_t KernelDatapath::map_memory() const {
  uint64_t total = 0;
  bpf_map* m;
  bpf_object__for_each_map(m, skel_->obj) {
    int fd = bpf_map__fd(m);
    if (fd < 0) continue;
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("memlock:", 0) == 0) total += std::stoull(line.substr(8));
  }
  return total;
}

int KernelDatapath::prog_fd() const {
  return bpf_program__fd(skel_->progs.xdpfw_main);
}
// A descriptor of its own: every program shares the map, but a resize
// closes the old program's descriptors, and a perf buffer keeps the one it
// was given (it deletes its entries through it when freed).
int KernelDatapath::events_map_fd() const {
  if (events_fd_ < 0) {
    events_fd_ = fcntl(bpf_map__fd(skel_->maps.xdpfw_events), F_DUPFD_CLOEXEC, 0);
    if (events_fd_ < 0) throw DatapathError("cannot duplicate the events map: " + errstr(errno));
  }
  return events_fd_;
}

CompileLimits KernelDatapath::limits() const {
  CompileLimits l;
  l.max_rules = opts_.max_rules;
  l.max_buckets_per_family = opts_.max_entries / XDPFW_SLOTS;
  l.no_ct = no_ct_;
  return l;
}

void KernelDatapath::need_conntrack(const Rule& r) {
  if (!r.ct || conntrack_on_ || !opts_.enable_conntrack) return;
  try {
    enable_conntrack();
  } catch (const std::exception& e) {
    throw DatapathError(e.what());
  }
  conntrack_on_ = true;
}

void KernelDatapath::write_config() {
  __u32 zero = 0;
  errno = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.xdpfw_config), &zero, &config_, BPF_ANY),
        "write xdpfw_config");
}

// Replacing an element of a map-of-maps returns only after an RCU grace
// period: every XDP run that could have read the old slot has finished.
// Plain fds, no members: it also runs on the catch-up thread.
static int sync_with_readers(int outer, int inner) {
  __u32 zero = 0;
  return bpf_map_update_elem(outer, &zero, &inner, BPF_ANY);
}

void KernelDatapath::wait_for_readers() {
  errno = 0;
  check(sync_with_readers(bpf_map__fd(skel_->maps.xdpfw_sync),
                          bpf_map__fd(skel_->maps.xdpfw_sync_inner)),
        "wait for XDP readers (xdpfw_sync)");
}

// ---- address sets ----

namespace {

bool full_length(const Prefix& p) {
  return p.len == (p.family == Family::v4 ? 32 : 128);
}

xdpfw_set_key set_key(uint32_t tag, const Prefix& p) {
  xdpfw_set_key k{};
  k.prefixlen = 32 + p.len;
  k.tag = tag | static_cast<uint32_t>(p.family);
  std::memcpy(k.addr, p.addr.data(), p.family == Family::v4 ? 4 : 16);
  return k;
}

}  // namespace

// The map that holds an element (bpf/xdpfw_maps.h): the hash for a
// full-length address, the trie for a shorter prefix.
int KernelDatapath::elements_fd(const Prefix& p) const {
  return bpf_map__fd(full_length(p) ? skel_->maps.xdpfw_set_hosts : skel_->maps.xdpfw_sets);
}

void KernelDatapath::reserve_elements(uint64_t n) {
  Capacity c = need(nullptr, 0);
  c.set_hosts = static_cast<uint32_t>(std::min<uint64_t>(c.set_hosts + n, opts_.max_set_elements));
  fit(c);
}

void KernelDatapath::write_element(uint32_t tag, const Prefix& p, uint64_t expires_ns, bool fresh) {
  if (full_length(p)) {
    Capacity n = need(nullptr, 0);
    ++n.set_hosts;
    fit(n, false, true);
  }
  int fd = elements_fd(p);
  xdpfw_set_key k = set_key(tag, p);
  xdpfw_set_elem e{expires_ns, 0};
  bool existed = false;
  // A rewrite keeps the packets counted so far (a few counted meanwhile
  // may be lost: the kernel replaces the element whole).
  if (!fresh) {
    xdpfw_set_elem old{};
    existed = bpf_map_lookup_elem(fd, &k, &old) == 0;
    if (existed) e.hits = old.hits;
  }
  errno = 0;
  // Fresh: created, or (left over in pins) overwritten; either way known.
  int rc = bpf_map_update_elem(fd, &k, &e, fresh ? BPF_NOEXIST : BPF_ANY);
  if (rc != 0 && fresh && errno == EEXIST) {
    existed = true;
    errno = 0;
    rc = bpf_map_update_elem(fd, &k, &e, BPF_ANY);
  }
  check(rc,
        std::string("write an element of ") + (full_length(p) ? "xdpfw_set_hosts" : "xdpfw_sets"));
  if (!existed) count_element(tag, p, +1);
}

void KernelDatapath::erase_element(uint32_t tag, const Prefix& p) {
  xdpfw_set_key k = set_key(tag, p);
  if (bpf_map_delete_elem(elements_fd(p), &k) == 0) {
    count_element(tag, p, -1);
    return;
  }
  if (errno != ENOENT)
    throw DatapathError(std::string("erase an element of ") +
                        (full_length(p) ? "xdpfw_set_hosts" : "xdpfw_sets") + ": " + errstr(errno));
}

uint64_t KernelDatapath::element_hits(uint32_t tag, const Prefix& p) const {
  xdpfw_set_key k = set_key(tag, p);
  xdpfw_set_elem e{};
  return bpf_map_lookup_elem(elements_fd(p), &k, &e) == 0 ? e.hits : 0;
}

uint32_t KernelDatapath::set_kinds(uint32_t tag) const {
  uint32_t kinds = 0;
  for (uint32_t fam : {0u, 1u}) {
    auto it = element_counts_.find(tag | fam);
    if (it == element_counts_.end()) continue;
    uint32_t shift = fam ? XDPFW_SET_KINDS_V6 : 0;
    if (it->second.hosts) kinds |= XDPFW_SET_HOSTS << shift;
    if (it->second.prefixes) kinds |= XDPFW_SET_PREFIXES << shift;
  }
  return kinds;
}

void KernelDatapath::write_set_tag(uint16_t set, uint32_t tag) {
  uint32_t key = set, value = tag ? tag | set_kinds(tag) : 0;
  errno = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.xdpfw_set_tags), &key, &value, BPF_ANY),
        "write xdpfw_set_tags");
}

// Added, the element is in its map before the set's kinds name that map;
// erased, it is gone before they stop naming it: a packet meanwhile sees
// the set as it was before the change, never without an element it holds.
void KernelDatapath::count_element(uint32_t tag, const Prefix& p, int delta) {
  uint32_t key = tag | static_cast<uint32_t>(p.family);
  ElementCount& c = element_counts_[key];
  uint32_t& n = full_length(p) ? c.hosts : c.prefixes;
  bool had = n != 0;
  if (delta > 0)
    ++n;
  else if (n)
    --n;
  bool has = n != 0;
  if (!c.hosts && !c.prefixes) element_counts_.erase(key);
  if (had == has) return;
  auto live = live_tags_.find(static_cast<uint16_t>(tag >> 2));
  if (live != live_tags_.end() && live->second == tag) write_set_tag(live->first, tag);
}

void KernelDatapath::count_set_elements() {
  element_counts_.clear();
  for (const auto& [tag, p] : set_elements()) {
    ElementCount& c = element_counts_[tag | static_cast<uint32_t>(p.family)];
    ++(full_length(p) ? c.hosts : c.prefixes);
  }
  live_tags_.clear();
  for (uint16_t id = 1; id < XDPFW_MAX_SETS; ++id)
    if (uint32_t tag = set_tag(id)) live_tags_[id] = tag;
}

uint32_t KernelDatapath::set_tag(uint16_t set) const {
  uint32_t key = set, value = 0;
  bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xdpfw_set_tags), &key, &value);
  return value & XDPFW_SET_TAG_MASK;
}

void KernelDatapath::switch_set_tag(uint16_t set, uint32_t tag) {
  write_set_tag(set, tag);
  if (tag)
    live_tags_[set] = tag;
  else
    live_tags_.erase(set);
  wait_for_readers();
}

std::vector<std::pair<uint32_t, Prefix>> KernelDatapath::set_elements() const {
  std::vector<std::pair<uint32_t, Prefix>> out;
  for (const bpf_map* m : {skel_->maps.xdpfw_sets, skel_->maps.xdpfw_set_hosts}) {
    int fd = bpf_map__fd(m);
    xdpfw_set_key k{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      Prefix p;
      p.family = (next.tag & 1) ? Family::v6 : Family::v4;
      p.len = static_cast<uint8_t>(next.prefixlen - 32);
      std::memcpy(p.addr.data(), next.addr, 16);
      out.emplace_back(next.tag & ~1u, p);
      k = next;
      prev = &k;
    }
  }
  return out;
}

// Two records per counter index, one per slot: the index does not depend on
// the map's size, so a resized map is a copy.
uint32_t KernelDatapath::cand_index(uint32_t slot, uint32_t rule_id) const {
  return counter_index_.at(rule_id) * XDPFW_SLOTS + slot;
}

xdpfw_bucket KernelDatapath::to_bucket(uint32_t slot, const Bucket& b) const {
  xdpfw_bucket out{};
  out.n = static_cast<uint8_t>(b.n);
  out.more = b.more;
  for (uint32_t j = 0; j < b.n; ++j) out.cand[j] = cand_index(slot, b.ids[j]);
  return out;
}

uint32_t KernelDatapath::alloc_counter_index() {
  uint32_t s;
  if (!free_counter_indexes_.empty()) {
    s = free_counter_indexes_.back();
    free_counter_indexes_.pop_back();
  } else if (next_counter_index_ >= opts_.max_rules &&
             (!grace_covers_.empty() || !retired_.empty())) {
    drain_retired();  // the slots of deleted rules, once no packet can reach them
    return alloc_counter_index();
  } else {
    if (next_counter_index_ >= opts_.max_rules)
      throw CompileError("no free rule counter index (limit " + std::to_string(opts_.max_rules) +
                         " rules)");
    s = next_counter_index_++;
  }
  // A slot is reused only once no slot's entries point at it: zero it.
  // (One past the map's end is zero in the larger map it will be in.)
  if (s >= cap_.counters) return s;
  std::vector<xdpfw_rule_counters> zeros(ncpus_);
  errno = 0;
  check(
      bpf_map_update_elem(bpf_map__fd(skel_->maps.xdpfw_rule_counters), &s, zeros.data(), BPF_ANY),
      "reset rule counters");
  return s;
}

namespace {

// View v of a compiled set (0: the set itself); an empty set where it has
// none (a slot not written yet).
const CompiledRuleset& view_of(const CompiledRuleset& c, uint32_t v) {
  static const CompiledRuleset none{};
  if (v == 0) return c;
  return v <= c.views.size() ? c.views[v - 1] : none;
}

}  // namespace

// Brings one slot's maps from slots_[slot].compiled to next (or, for a slot
// whose content is unknown, rewrites it whole). The slot must not be the
// active one.
void KernelDatapath::write_slot(uint32_t slot, const std::shared_ptr<CompiledRuleset>& next_ptr) {
  SlotState& st = slots_[slot];
  bool full = !st.known;
  if (full) purge_slot(slot);
  const CompiledRuleset& cur = *st.compiled;
  const CompiledRuleset& next = *next_ptr;
  st.known = false;  // until every write below succeeded

  // Writes go out in batches of a few thousand: a full write at 100,000
  // rules never holds all its records and buckets in memory at once.
  auto batch = [&](int fd, const char* what, auto key, auto value) {
    return Batch<decltype(key), decltype(value)>{fd, what};
  };
  int fd4 = bpf_map__fd(skel_->maps.xdpfw_buckets_v4);
  int fd6 = bpf_map__fd(skel_->maps.xdpfw_buckets_v6);
  // f(the view's buckets now, as they will be, a family's batch, the key
  // with the view's slot) over every view and both families; then the
  // batches go out. Keys carry the slot and the view (slot + XDPFW_SLOTS * view).
  auto each_view = [&](auto& b4, auto& b6, auto f) {
    for (uint32_t v = 0; v < XDPFW_VIEWS; ++v) {
      auto in_slot = [kslot = static_cast<uint8_t>(slot + XDPFW_SLOTS * v)](auto k) {
        k.slot = kslot;
        return k;
      };
      f(view_of(cur, v).v4, view_of(next, v).v4, b4, in_slot);
      f(view_of(cur, v).v6, view_of(next, v).v6, b6, in_slot);
    }
    b4.flush();
    b6.flush();
  };

  // No packet reads this slot: deletes first, so that it never holds more
  // buckets than the old set or the new one (the maps are sized for that).
  if (!full) {
    auto d4 = batch(fd4, "xdpfw_buckets_v4", xdpfw_key4{}, Deletion{});
    auto d6 = batch(fd6, "xdpfw_buckets_v6", xdpfw_key6{}, Deletion{});
    each_view(d4, d6, [&](const auto& now, const auto& want, auto& out, auto in_slot) {
      for (const auto& [k, b] : now)
        if (!want.count(k)) out.add(in_slot(k));
    });
  }

  // Candidate records: new rules, and ids whose rule changed.
  auto cands = batch(bpf_map__fd(skel_->maps.xdpfw_cands), "xdpfw_cands", __u32{}, xdpfw_cand{});
  for (const auto& [id, c] : next.cands) {
    auto now = cur.cands.find(id);  // both are hash maps: a lookup, not a merge
    if (!full && now != cur.cands.end() && std::memcmp(&now->second, &c, sizeof c) == 0) continue;
    xdpfw_cand v = c;
    v.counter = counter_index_.at(id);
    cands.add(cand_index(slot, id), v);
    ++records_written_;
  }
  cands.flush();

  // Buckets new or changed.
  auto u4 = batch(fd4, "xdpfw_buckets_v4", xdpfw_key4{}, xdpfw_bucket{});
  auto u6 = batch(fd6, "xdpfw_buckets_v6", xdpfw_key6{}, xdpfw_bucket{});
  each_view(u4, u6, [&](const auto& now, const auto& want, auto& out, auto in_slot) {
    for (const auto& [k, b] : want) {
      auto it = now.find(k);
      if (full || it == now.end() || !(it->second == b)) out.add(in_slot(k), to_bucket(slot, b));
    }
  });

  // Candidate masks: a field kept in its block, only the entries that
  // changed; a field new to the slot (or a full rewrite), all of them.
  bool keep[2][XDPFW_SUMMARY_FIELDS];
  assign_blocks(slot, next, full, keep);
  auto masks =
      batch(bpf_map__fd(skel_->maps.xdpfw_summary), "xdpfw_summary", __u32{}, xdpfw_tmask{});
  const xdpfw_tmask zero{};
  for (uint32_t fam = 0; fam < 2; ++fam)
    for (uint32_t f = 0; f < XDPFW_SUMMARY_FIELDS; ++f) {
      int32_t block = st.block[fam][f];
      if (block < 0) continue;
      const auto& a = cur.summary[fam];
      const auto& b = next.summary[fam];
      for (uint32_t v = 0; v < XDPFW_SUMMARY_SPACE; ++v) {
        uint32_t i = f * XDPFW_SUMMARY_SPACE + v;
        const xdpfw_tmask& was = a.empty() ? zero : a[i];
        const xdpfw_tmask& want = b.empty() ? zero : b[i];
        if (keep[fam][f] && std::memcmp(&was, &want, sizeof want) == 0) continue;
        masks.add(static_cast<uint32_t>(block) * XDPFW_SUMMARY_SPACE + v, want);
      }
    }
  masks.flush();

  for (uint32_t v = 0; v < XDPFW_VIEWS; ++v) write_header(slot, v, view_of(next, v).header);
  st.compiled = next_ptr;
  st.known = true;
}

// The summary blocks slot reads once it holds next: a field it read before
// keeps its block (keep: only changed entries need writing, unless full);
// a new one takes the lowest block neither slot uses.
void KernelDatapath::assign_blocks(uint32_t slot, const CompiledRuleset& next, bool full,
                                   bool keep[2][XDPFW_SUMMARY_FIELDS]) {
  SlotState& st = slots_[slot];
  std::vector<bool> taken(cap_.summary_blocks);
  auto take = [&](int32_t b) {
    if (b >= 0 && static_cast<uint32_t>(b) < taken.size()) taken[b] = true;
  };
  for (auto& fam : slots_[slot ^ 1].block)
    for (int32_t b : fam) take(b);
  for (int fam = 0; fam < 2; ++fam)
    for (int f = 0; f < XDPFW_SUMMARY_FIELDS; ++f) {
      bool used = (next.header.summaries[fam] >> f) & 1;
      int32_t& b = st.block[fam][f];
      keep[fam][f] = used && b >= 0 && !full;
      if (!used) b = -1;
      take(b);
    }
  for (int fam = 0; fam < 2; ++fam)
    for (int f = 0; f < XDPFW_SUMMARY_FIELDS; ++f) {
      int32_t& b = st.block[fam][f];
      if (!((next.header.summaries[fam] >> f) & 1) || b >= 0) continue;
      auto it = std::find(taken.begin(), taken.end(), false);
      if (it == taken.end())
        throw DatapathError("no free block in xdpfw_summary (" +
                            std::to_string(cap_.summary_blocks) + " blocks)");
      b = static_cast<int32_t>(it - taken.begin());
      *it = true;
    }
}

uint32_t KernelDatapath::slot_buckets(uint32_t slot, int fam) const {
  const SlotState& st = slots_[slot];
  if (!st.known) return st.counted[fam];
  uint32_t n = 0;
  for (uint32_t v = 0; v < XDPFW_VIEWS; ++v) {
    const CompiledRuleset& c = view_of(*st.compiled, v);
    n += static_cast<uint32_t>(fam ? c.v6.size() : c.v4.size());
  }
  return n;
}

uint32_t KernelDatapath::slot_blocks(uint32_t slot) const {
  uint32_t n = 0;
  for (const auto& fam : slots_[slot].block)
    for (int32_t b : fam) n += b >= 0;
  return n;
}

uint32_t KernelDatapath::host_elements() const {
  uint32_t n = 0;
  for (const auto& [tag, c] : element_counts_) n += c.hosts;
  return n;
}

namespace {
// Token buckets of xdpfw_rate a rule set may fill: one per rate rule, or
// the most the map may hold with "per src".
uint32_t rate_buckets(const CompiledRuleset& c) {
  uint32_t n = 0;
  for (const auto& [id, r] : c.cands)
    if (r.flags & XDPFW_CAND_RATE) {
      if (r.rate_plen) return XDPFW_RATE_BUCKETS;
      ++n;
    }
  return n;
}

uint32_t summary_fields(const CompiledRuleset& c) {
  return __builtin_popcount(c.header.summaries[0]) + __builtin_popcount(c.header.summaries[1]);
}
}  // namespace

KernelDatapath::Capacity KernelDatapath::need(const CompiledRuleset* next,
                                              uint32_t next_rate) const {
  Capacity n;
  n.counters = next_counter_index_;
  const CompiledRuleset& live = *slots_[active_].compiled;
  // The other slot holds next after the flip, and the live one too after
  // the catch-up: the larger of the two sets, then next twice.
  for (int fam = 0; fam < 2; ++fam) {
    uint32_t now = slot_buckets(active_, fam), want = 0;
    for (uint32_t v = 0; v < XDPFW_VIEWS; ++v) {
      const CompiledRuleset& c = view_of(next ? *next : live, v);
      want += static_cast<uint32_t>(fam ? c.v6.size() : c.v4.size());
    }
    n.buckets[fam] = std::max(now, want) + want;
  }
  uint32_t now_blocks = slot_blocks(active_), want_blocks = summary_fields(next ? *next : live);
  n.summary_blocks = std::max(now_blocks, want_blocks) + want_blocks;
  // The highest block in use stays inside the map (a resize copies blocks).
  for (const auto& fam : slots_[active_].block)
    for (int32_t b : fam) n.summary_blocks = std::max<uint32_t>(n.summary_blocks, b + 1);
  n.set_hosts = host_elements();
  n.rate = std::max(live_rate_, next_rate);
  return n;
}

// Resizes the maps when need does not fit in them, or, with shrink, when
// they are more than four times what it needs. A map that must grow for
// one more rule or element (one_more) doubles: a stream of adds pays one
// program load per doubling, not one per eighth.
void KernelDatapath::fit(const Capacity& need, bool shrink, bool one_more) {
  Capacity want = wanted(need, shrink, one_more);
  if (!(want == cap_)) resize(want);
}

KernelDatapath::Capacity KernelDatapath::wanted(const Capacity& need, bool shrink,
                                                bool one_more) const {
  auto grown = [&](uint32_t r, uint32_t now) {
    return static_cast<uint32_t>(one_more && r > now ? std::max<uint64_t>(r, 2ull * now) : r);
  };
  Capacity want;
  want.counters = grown(room(need.counters, cap_.counters, kMinCounters, shrink), cap_.counters);
  want.counters = std::max(want.counters, next_counter_index_);
  for (int fam = 0; fam < 2; ++fam)
    want.buckets[fam] = grown(hash_room(need.buckets[fam], cap_.buckets[fam], kMinBuckets, shrink),
                              cap_.buckets[fam]);
  // Blocks are 1 MiB each: no slack.
  want.summary_blocks = need.summary_blocks > cap_.summary_blocks ||
                                (shrink && need.summary_blocks < cap_.summary_blocks)
                            ? need.summary_blocks
                            : cap_.summary_blocks;
  want.set_hosts = static_cast<uint32_t>(std::min<uint64_t>(
      grown(hash_room(need.set_hosts, cap_.set_hosts, kMinSetHosts, shrink), cap_.set_hosts),
      opts_.max_set_elements));
  want.rate =
      need.rate >= XDPFW_RATE_BUCKETS
          ? XDPFW_RATE_BUCKETS
          : std::min<uint32_t>(room(need.rate, cap_.rate, kMinRate, shrink), XDPFW_RATE_BUCKETS);
  return want;
}

// A program with maps of the sizes want replaces this one: its maps get a
// copy of every element (same keys and indexes), the links move to it (see
// on_program_change), and once no packet runs the old one any more, the
// packets that one counted meanwhile are added and it goes. Every packet
// meets the old program or the new one, both holding the same rules.
void KernelDatapath::resize(const Capacity& want, ::xdpfw_bpf* loaded) {
  // A catch-up writing the old slot finishes first: the copy must see it.
  if (grace_.joinable()) grace_.join();
  ::xdpfw_bpf* next = loaded ? loaded : open_program(want, skel_);
  const Capacity was = cap_;
  std::vector<char> counted;
  const size_t counter_size = sizeof(xdpfw_rule_counters) * ncpus_;
  const uint32_t counters = std::min(was.counters, want.counters);
  try {
    errno = 0;
    if (!loaded) check(xdpfw_bpf__load(next), "load the XDP program with resized maps");
    auto fd = [](const bpf_map* m) { return bpf_map__fd(m); };
    const auto& a = skel_->maps;
    const auto& b = next->maps;
    copy_hash(fd(a.xdpfw_buckets_v4), fd(b.xdpfw_buckets_v4), sizeof(xdpfw_key4),
              sizeof(xdpfw_bucket), "xdpfw_buckets_v4");
    copy_hash(fd(a.xdpfw_buckets_v6), fd(b.xdpfw_buckets_v6), sizeof(xdpfw_key6),
              sizeof(xdpfw_bucket), "xdpfw_buckets_v6");
    copy_elements(skel_, next);
    copy_array(fd(a.xdpfw_cands), fd(b.xdpfw_cands), XDPFW_SLOTS * counters, sizeof(xdpfw_cand),
               "xdpfw_cands");
    copy_array(fd(a.xdpfw_rulesets), fd(b.xdpfw_rulesets), XDPFW_SLOTS * XDPFW_VIEWS,
               sizeof(xdpfw_ruleset), "xdpfw_rulesets");
    copy_array(fd(a.xdpfw_summary), fd(b.xdpfw_summary),
               std::min(was.summary_blocks, want.summary_blocks) * XDPFW_SUMMARY_SPACE,
               sizeof(xdpfw_tmask), "xdpfw_summary");
    counted = copy_array(fd(a.xdpfw_rule_counters), fd(b.xdpfw_rule_counters), counters,
                         counter_size, "xdpfw_rule_counters");
  } catch (...) {
    xdpfw_bpf__destroy(next);
    throw;
  }
  ::xdpfw_bpf* old = skel_;
  skel_ = next;
  cap_ = want;
  std::vector<uint32_t> same(counters);  // every index stays
  for (uint32_t i = 0; i < counters; ++i) same[i] = i;
  switch_from(old, counted, same, false);
}

// The sets' single addresses and the rate buckets, as they are, into to.
void KernelDatapath::copy_elements(const ::xdpfw_bpf* from, ::xdpfw_bpf* to) const {
  copy_hash(bpf_map__fd(from->maps.xdpfw_set_hosts), bpf_map__fd(to->maps.xdpfw_set_hosts),
            sizeof(xdpfw_set_key), sizeof(xdpfw_set_elem), "xdpfw_set_hosts");
  copy_hash(bpf_map__fd(from->maps.xdpfw_rate), bpf_map__fd(to->maps.xdpfw_rate),
            sizeof(xdpfw_rate_key), sizeof(xdpfw_rate_state), "xdpfw_rate");
}

// The tail of a resize or a compaction, skel_ being the new program: the
// links move to it, the pins are replaced, and once no packet runs old any
// more, what old counted after counted was read is added under the new
// indexes (new index i was old_index[i]); then old goes. renumbered: the
// new maps number rules otherwise, and pins of both programs together would
// not agree: until every pin is replaced, the config names no layout, so
// that a run starting after a crash in between replaces them all
// (docs/DATAPATH.md, "Map sizes").
void KernelDatapath::switch_from(::xdpfw_bpf* old, const std::vector<char>& counted,
                                 const std::vector<uint32_t>& old_index, bool renumbered) {
  ++resizes_;
  if (program_changed_) program_changed_(prog_fd());
  if (renumbered) {
    config_.layout = 0;
    write_config();
  }
  repin_sized();
  if (renumbered) {
    config_.layout = XDPFW_MAP_LAYOUT;
    write_config();
  }
  wait_for_readers();
  const size_t cs = sizeof(xdpfw_rule_counters) * ncpus_;
  std::vector<char> now(cs);
  int from = bpf_map__fd(old->maps.xdpfw_rule_counters);
  int to = bpf_map__fd(skel_->maps.xdpfw_rule_counters);
  for (uint32_t i = 0; i < old_index.size(); ++i) {
    uint32_t o = old_index[i];
    const char* before = &counted[o * cs];
    if (bpf_map_lookup_elem(from, &o, now.data()) != 0 || std::memcmp(now.data(), before, cs) == 0)
      continue;
    std::vector<xdpfw_rule_counters> sum(ncpus_);
    if (bpf_map_lookup_elem(to, &i, sum.data()) != 0) continue;
    add_counted(now.data(), before, sum);
    bpf_map_update_elem(to, &i, sum.data(), BPF_ANY);
  }
  xdpfw_bpf__destroy(old);
}

// The pins of the maps each program has of its own, replaced by this
// program's. Each pin is replaced whole (rename): a crash between two
// leaves maps of two programs, each holding the same rules.
void KernelDatapath::repin_sized() {
  if (opts_.pin_dir.empty()) return;
  const auto& m = skel_->maps;
  for (bpf_map* map : {m.xdpfw_rulesets, m.xdpfw_buckets_v4, m.xdpfw_buckets_v6, m.xdpfw_set_hosts,
                       m.xdpfw_rate, m.xdpfw_cands, m.xdpfw_summary, m.xdpfw_rule_counters}) {
    std::string path = pin_path(map), tmp = path + "_new";  // bpffs names take no dot
    unlink(tmp.c_str());
    errno = 0;
    check(bpf_obj_pin(bpf_map__fd(map), tmp.c_str()), "pin " + tmp);
    if (rename(tmp.c_str(), path.c_str()) != 0)
      throw DatapathError("cannot replace the pin " + path + ": " + errstr(errno));
  }
}

// Deletes and replaces leave counter indexes scattered (a replace by a set
// of other rules holds both sets' indexes until its catch-up): the maps
// cannot shrink below the highest one in use. This rewrites both slots,
// with the indexes renumbered 0 to n-1, into a program whose maps are sized
// for the set, and moves the links to it as resize() does; each rule's
// counters move with it. Both slots must hold the same known set.
// The sizes compact() writes the set into.
KernelDatapath::Capacity KernelDatapath::compact_size() const {
  const CompiledRuleset& set = *slots_[active_].compiled;
  const auto n = static_cast<uint32_t>(counter_index_.size());
  Capacity want;
  want.counters = room(n, 0, kMinCounters, false);
  for (int fam = 0; fam < 2; ++fam)
    want.buckets[fam] = hash_room(2 * slot_buckets(active_, fam), 0, kMinBuckets, false);
  want.summary_blocks = 2 * summary_fields(set);
  want.set_hosts = hash_room(host_elements(), 0, kMinSetHosts, false);
  want.rate = live_rate_ >= XDPFW_RATE_BUCKETS
                  ? XDPFW_RATE_BUCKETS
                  : std::min<uint32_t>(room(live_rate_, 0, kMinRate, false), XDPFW_RATE_BUCKETS);
  return want;
}

void KernelDatapath::compact(::xdpfw_bpf* loaded) {
  drain_retired();
  const std::shared_ptr<CompiledRuleset> set = slots_[active_].compiled;
  std::vector<std::pair<uint32_t, uint32_t>> order;  // old index, rule id
  order.reserve(counter_index_.size());
  for (const auto& [id, idx] : counter_index_) order.emplace_back(idx, id);
  std::sort(order.begin(), order.end());
  const auto n = static_cast<uint32_t>(order.size());
  const Capacity want = compact_size();

  ::xdpfw_bpf* const old = skel_;
  const Capacity was = cap_;
  auto was_index = counter_index_;
  const SlotState was_slots[XDPFW_SLOTS] = {slots_[0], slots_[1]};
  const uint32_t was_next = next_counter_index_;
  const size_t cs = sizeof(xdpfw_rule_counters) * ncpus_;
  ::xdpfw_bpf* next = loaded ? loaded : open_program(want, old);
  std::vector<char> counted;
  try {
    errno = 0;
    if (!loaded) check(xdpfw_bpf__load(next), "load the XDP program with resized maps");
    counted =
        read_array(bpf_map__fd(old->maps.xdpfw_rule_counters), was_next, cs, "xdpfw_rule_counters");
    std::vector<char> moved(n * cs);
    for (uint32_t i = 0; i < n; ++i) {
      std::memcpy(&moved[i * cs], &counted[order[i].first * cs], cs);
      counter_index_[order[i].second] = i;
    }
    write_array(bpf_map__fd(next->maps.xdpfw_rule_counters), moved, n, "xdpfw_rule_counters");
    copy_elements(old, next);
    skel_ = next;
    cap_ = want;
    for (SlotState& st : slots_) st = SlotState{};
    slots_[0].known = slots_[1].known = false;
    write_slot(0, set);
    write_slot(1, set);
  } catch (...) {
    skel_ = old;
    cap_ = was;
    counter_index_ = std::move(was_index);
    slots_[0] = was_slots[0];  // the old program's maps are as they were
    slots_[1] = was_slots[1];
    xdpfw_bpf__destroy(next);
    throw;
  }
  next_counter_index_ = n;
  free_counter_indexes_.clear();
  std::vector<uint32_t> old_index(n);
  for (uint32_t i = 0; i < n; ++i) old_index[i] = order[i].first;
  switch_from(old, counted, old_index, true);
}

// Before a slot of unknown content is rewritten: delete every bucket of the
// slot (candidate records and masks are overwritten whole).
void KernelDatapath::purge_slot(uint32_t slot) {
  auto purge = [&](bpf_map* map, auto key_type) {
    using K = decltype(key_type);
    int fd = bpf_map__fd(map);
    std::vector<K> dead;
    K k{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      if (next.slot % XDPFW_SLOTS == slot) dead.push_back(next);  // every view
      k = next;
      prev = &k;
    }
    delete_batch(fd, dead.data(), dead.size(), bpf_map__name(map));
  };
  purge(skel_->maps.xdpfw_buckets_v4, xdpfw_key4{});
  purge(skel_->maps.xdpfw_buckets_v6, xdpfw_key6{});
  SlotState& st = slots_[slot];
  st.compiled = std::make_shared<CompiledRuleset>();
  st.counted[0] = st.counted[1] = 0;
  for (auto& fam : st.block)
    for (int32_t& b : fam) b = -1;
}

void KernelDatapath::apply(const std::vector<Rule>& rules, const Policy& policy) {
  auto next = std::make_shared<CompiledRuleset>(compile_rules(rules, policy, limits()));
  const uint32_t next_rate = rate_buckets(*next);
  for (const Rule& r : rules) need_conntrack(r);
  finish_catch_up();

  // Counter slots: new rules get one now; those of removed rules are freed
  // only after both slots stopped pointing at them.
  std::vector<uint32_t> kept;  // the ids of rules, sorted
  kept.reserve(rules.size());
  for (const Rule& r : rules) kept.push_back(r.id);
  std::sort(kept.begin(), kept.end());
  std::vector<uint32_t> added;
  try {
    for (const Rule& r : rules)
      if (!counter_index_.count(r.id)) {
        counter_index_[r.id] = alloc_counter_index();
        added.push_back(r.id);
      }
  } catch (...) {
    for (uint32_t id : added) {
      free_counter_indexes_.push_back(counter_index_[id]);
      counter_index_.erase(id);
    }
    throw;
  }

  ++generation_;
  uint32_t standby = active_ ^ 1;
  try {
    fit(need(next.get(), next_rate));
    write_slot(standby, next);
  } catch (...) {
    // The active slot is untouched: packets still see the old set.
    for (uint32_t id : added) {
      free_counter_indexes_.push_back(counter_index_[id]);
      counter_index_.erase(id);
    }
    throw;
  }
  config_.active_slot = standby;
  config_.audit = policy.audit;
  write_config();
  active_ = standby;
  live_rate_ = next_rate;

  // Packets see the new set from here. The old slot is brought up to date
  // for the next flip once no XDP run can be reading it any more: the wait
  // (an RCU grace period, tens of ms on a busy machine) and the writes
  // (at 100,000 rules, a tenth of a second or more) run on a thread of
  // their own, so that the caller has its answer now and the agent's loop
  // goes on serving; the next change (or the destructor) waits for it.
  catch_up_ = CatchUp{standby ^ 1, std::move(next), std::move(kept)};
  start_grace();
}

// The thread waits for a grace period, and with a catch-up due writes the
// old slot. Meanwhile the loop's thread reads what the thread does not
// change and changes nothing it reads: everything that writes a slot, the
// counter indexes or the maps' sizes joins it first (in_sync, apply,
// finish_catch_up, resize).
void KernelDatapath::start_grace() {
  int outer = bpf_map__fd(skel_->maps.xdpfw_sync);
  int inner = bpf_map__fd(skel_->maps.xdpfw_sync_inner);
  grace_ok_ = false;
  grace_done_ = false;
  catch_up_tried_ = false;
  grace_ = std::thread([this, outer, inner] {
    grace_ok_ = sync_with_readers(outer, inner) == 0;
    if (grace_ok_ && catch_up_) {
      catch_up_tried_ = true;
      try {
        write_slot(catch_up_->slot, catch_up_->next);
      } catch (...) {
        slots_[catch_up_->slot].known = false;  // rewritten whole before use
      }
    }
    grace_done_ = true;
  });
}

// Without blocking: a grace period that is over frees the counter indexes it
// covers, and the slots retired since get one of their own.
void KernelDatapath::reap() {
  if (grace_.joinable()) {
    if (!grace_done_) return;
    grace_.join();
    if (!grace_ok_) wait_for_readers();
  }
  free_counter_indexes_.insert(free_counter_indexes_.end(), grace_covers_.begin(),
                               grace_covers_.end());
  grace_covers_.clear();
  if (!retired_.empty() && !catch_up_) {
    grace_covers_.swap(retired_);
    start_grace();
  }
}

// Blocking: every retired counter index free again.
void KernelDatapath::drain_retired() {
  if (grace_.joinable()) grace_.join();
  if (!grace_covers_.empty() || !retired_.empty()) {
    if (!grace_ok_ || !retired_.empty()) wait_for_readers();
    free_counter_indexes_.insert(free_counter_indexes_.end(), grace_covers_.begin(),
                                 grace_covers_.end());
    free_counter_indexes_.insert(free_counter_indexes_.end(), retired_.begin(), retired_.end());
    grace_covers_.clear();
    retired_.clear();
  }
}

// Both slots hold the same set, known, with no catch-up due. A pending
// catch-up (after a flip) is finished, waiting for its grace period; the
// grace periods of in-place deletes are not waited for.
bool KernelDatapath::in_sync() {
  if (catch_up_)
    finish_catch_up();
  else
    reap();
  return slots_[0].known && slots_[1].known && slots_[0].compiled == slots_[1].compiled;
}

// The writes of an in-place change into one slot. For the active slot the
// order matters: the records of rules new in a bucket, then the masks (bits only added:
// a packet that sees them early probes one table more), then the header
// (bits only added), and last the buckets, one write each: a packet sees
// the rule once its bucket is written, and all it needs is there by then.
void KernelDatapath::write_delta(uint32_t slot, const CompiledDelta& d) {
  const CompiledRuleset& c = *slots_[slot].compiled;
  errno = 0;
  for (uint32_t id : d.cands) {
    xdpfw_cand v = c.cands.at(id);
    v.counter = counter_index_.at(id);
    uint32_t idx = cand_index(slot, id);
    check(bpf_map_update_elem(bpf_map__fd(skel_->maps.xdpfw_cands), &idx, &v, BPF_ANY),
          "write xdpfw_cands");
  }
  for (uint32_t fam = 0; fam < 2; ++fam) {
    if (d.summary[fam].empty()) continue;
    std::vector<__u32> idx;
    std::vector<xdpfw_tmask> val;
    for (uint32_t i : d.summary[fam]) {
      int32_t block = slots_[slot].block[fam][i / XDPFW_SUMMARY_SPACE];
      if (block < 0) continue;  // a field the slot does not read
      idx.push_back(static_cast<uint32_t>(block) * XDPFW_SUMMARY_SPACE + i % XDPFW_SUMMARY_SPACE);
      val.push_back(c.summary[fam][i]);
    }
    update_batch(bpf_map__fd(skel_->maps.xdpfw_summary), idx.data(), val.data(), idx.size(),
                 "xdpfw_summary");
  }
  for (uint32_t v = 0; v < XDPFW_VIEWS; ++v) {
    const CompiledDelta* dv = v == 0 ? &d : v <= d.views.size() ? &d.views[v - 1] : nullptr;
    if (dv && dv->header) write_header(slot, v, view_of(c, v).header);
  }
  auto buckets = [&](bpf_map* map, const auto& list, uint32_t kslot) {
    int fd = bpf_map__fd(map);
    for (const auto& [k, b] : list) {
      auto key = k;
      key.slot = static_cast<uint8_t>(kslot);
      if (b) {
        xdpfw_bucket v = to_bucket(slot, *b);
        check(bpf_map_update_elem(fd, &key, &v, BPF_ANY), "write a bucket");
      } else {
        check(bpf_map_delete_elem(fd, &key), "delete a bucket");
      }
    }
  };
  buckets(skel_->maps.xdpfw_buckets_v4, d.v4, slot);
  buckets(skel_->maps.xdpfw_buckets_v6, d.v6, slot);
  for (uint32_t v = 1; v <= d.views.size(); ++v) {
    buckets(skel_->maps.xdpfw_buckets_v4, d.views[v - 1].v4, slot + XDPFW_SLOTS * v);
    buckets(skel_->maps.xdpfw_buckets_v6, d.views[v - 1].v6, slot + XDPFW_SLOTS * v);
  }
}

// The header of one view of a slot (view 0: the rule set itself).
void KernelDatapath::write_header(uint32_t slot, uint32_t view, const xdpfw_ruleset& h) {
  xdpfw_ruleset hdr = h;
  hdr.generation = generation_;
  for (int fam = 0; fam < 2; ++fam)
    for (int f = 0; f < XDPFW_SUMMARY_FIELDS; ++f)
      hdr.summary_block[fam][f] =
          view == 0 ? static_cast<uint16_t>(std::max(slots_[slot].block[fam][f], 0)) : 0;
  uint32_t idx = slot + XDPFW_SLOTS * view;
  errno = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.xdpfw_rulesets), &idx, &hdr, BPF_ANY),
        "write xdpfw_rulesets");
}

bool KernelDatapath::add_in_place(const Rule& r) {
  if (!in_sync() || counter_index_.count(r.id) || counter_index_.size() >= opts_.max_rules)
    return false;
  if (r.ct && !no_ct_.empty()) return false;  // apply() says why
  need_conntrack(r);
  CompiledRuleset& c = *slots_[active_].compiled;
  // Room first: a counter index, and a bucket per view in each slot.
  // Indexes of deleted rules waiting for their grace period are cheaper to
  // wait for (tens of ms) than a resize.
  if (free_counter_indexes_.empty() && next_counter_index_ >= cap_.counters &&
      (!grace_covers_.empty() || !retired_.empty()))
    drain_retired();
  Capacity n = need(nullptr, 0);
  if (free_counter_indexes_.empty()) n.counters = next_counter_index_ + 1;
  for (int fam = 0; fam < 2; ++fam) n.buckets[fam] += 2 * XDPFW_VIEWS;
  if (r.rate)
    n.rate = r.per ? XDPFW_RATE_BUCKETS : std::min<uint32_t>(n.rate + 1, XDPFW_RATE_BUCKETS);
  fit(n, false, true);
  live_rate_ = n.rate;
  // Plan on the shared set (nothing written if it does not fit), then the
  // counter index, then the kernel.
  auto d = xdpfw::add_in_place(c, r);
  if (!d) return false;
  try {
    counter_index_[r.id] = alloc_counter_index();
    write_delta(active_ ^ 1, *d);
    write_delta(active_, *d);
  } catch (...) {
    slots_[0].known = slots_[1].known = false;  // the next apply rewrites both
    throw;
  }
  return true;
}

bool KernelDatapath::remove_in_place(const Rule& r) {
  if (!in_sync() || !counter_index_.count(r.id)) return false;
  CompiledRuleset& c = *slots_[active_].compiled;
  auto d = xdpfw::remove_in_place(c, r);
  if (!d) return false;
  try {
    write_delta(active_ ^ 1, *d);
    write_delta(active_, *d);
  } catch (...) {
    slots_[0].known = slots_[1].known = false;
    throw;
  }
  // Its record and counter index stay until no packet can still be reading
  // the bucket that named it.
  retired_.push_back(counter_index_.at(r.id));
  counter_index_.erase(r.id);
  reap();
  return true;
}

// The tail of the previous apply: after its grace period, the slot it
// flipped away from gets the same set, and counter indexes of rules gone from
// both slots are free again. A failed write leaves the slot unknown, to be
// rewritten whole before it is used.
void KernelDatapath::finish_catch_up() {
  if (!catch_up_) return drain_retired();
  if (grace_.joinable()) grace_.join();
  CatchUp c = std::move(*catch_up_);
  catch_up_.reset();
  if (!catch_up_tried_) {  // the grace period failed on the thread
    wait_for_readers();    // throws if the kernel refuses again
    try {
      write_slot(c.slot, c.next);
    } catch (const DatapathError&) {
      slots_[c.slot].known = false;
    }
  }
  catch_up_tried_ = false;
  std::vector<uint32_t> gone;
  for (const auto& [id, idx] : counter_index_)
    if (!std::binary_search(c.wanted.begin(), c.wanted.end(), id)) {
      free_counter_indexes_.push_back(idx);
      gone.push_back(id);
    }
  for (uint32_t id : gone) counter_index_.erase(id);
}

void KernelDatapath::settle() {
  if (!catch_up_)
    reap();
  else if (grace_done_)
    finish_catch_up();
  // Shrinking waits for both slots to hold the same set; free counter
  // indexes at the top no longer count.
  if (catch_up_ || !slots_[0].known || !slots_[1].known || slots_[0].compiled != slots_[1].compiled)
    return;
  if (!std::is_sorted(free_counter_indexes_.begin(), free_counter_indexes_.end()))
    std::sort(free_counter_indexes_.begin(), free_counter_indexes_.end());
  while (!free_counter_indexes_.empty() &&
         free_counter_indexes_.back() + 1 == next_counter_index_) {
    free_counter_indexes_.pop_back();
    --next_counter_index_;
  }
  // Shrinking and compaction are upkeep: their program is verified on a
  // thread (0.3-0.4 s), and used here only if the sizes it was made for are
  // still the ones wanted.
  const bool compacting = next_counter_index_ > counter_index_.size() * 3 / 2 + kMinCounters;
  const Capacity want = compacting ? compact_size() : wanted(need(nullptr, 0), true, false);
  if (bg_) {
    if (!bg_->done) return;
    bg_->thread.join();
    std::unique_ptr<BackgroundLoad> bg = std::move(bg_);
    if (bg->rc != 0 || bg->compact != compacting || !(bg->want == want)) {
      xdpfw_bpf__destroy(bg->skel);
      return;
    }
    if (compacting)
      compact(bg->skel);
    else
      resize(want, bg->skel);
    return;
  }
  if (!compacting && want == cap_) return;
  auto bg = std::make_unique<BackgroundLoad>();
  bg->want = want;
  bg->compact = compacting;
  bg->skel = open_program(want, skel_);
  BackgroundLoad* b = bg.get();
  bg->thread = std::thread([b] {
    b->rc = xdpfw_bpf__load(b->skel);
    b->done = true;
  });
  bg_ = std::move(bg);
}

std::optional<RuleCounters> KernelDatapath::rule_counters(uint32_t rule_id) const {
  auto it = counter_index_.find(rule_id);
  if (it == counter_index_.end()) return std::nullopt;
  if (catch_up_ && !std::binary_search(catch_up_->wanted.begin(), catch_up_->wanted.end(), rule_id))
    return std::nullopt;  // removed
  std::vector<xdpfw_rule_counters> v(ncpus_);
  errno = 0;
  check(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xdpfw_rule_counters), &it->second, v.data()),
        "read rule counters");
  RuleCounters rc;
  for (const auto& c : v) {
    rc.packets += c.packets;
    rc.bytes += c.bytes;
  }
  return rc;
}

std::unordered_map<uint32_t, RuleCounters> KernelDatapath::all_rule_counters() const {
  std::unordered_map<uint32_t, RuleCounters> out;
  for (const auto& [id, slot] : counter_index_)
    if (auto c = rule_counters(id)) out[id] = *c;
  return out;
}

Stats KernelDatapath::stats() const {
  std::vector<xdpfw_stats> v(ncpus_);
  __u32 zero = 0;
  errno = 0;
  check(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xdpfw_stats), &zero, v.data()),
        "read xdpfw_stats");
  Stats s;
  for (const auto& cpu : v)
    for (int i = 0; i < XDPFW_STAT_MAX; ++i) s.c[i] += cpu.c[i];
  return s;
}

void KernelDatapath::set_event_limit(uint64_t events_per_sec, uint64_t burst) {
  if (events_per_sec == 0) {
    config_.event_cost_ns = 0;
    config_.event_burst_ns = 0;
  } else {
    // Each CPU gets an equal share of the rate and of the burst.
    uint64_t cost = (1'000'000'000ull * ncpus_ + events_per_sec - 1) / events_per_sec;
    uint64_t per_cpu_burst = std::max<uint64_t>(1, burst / ncpus_);
    config_.event_cost_ns = cost;
    config_.event_burst_ns = cost * per_cpu_burst;
  }
  write_config();
}

namespace {
size_t page_size() {
  return static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

size_t KernelDatapath::event_ring_pages() const {
  // A record: the event, its size word and the perf header, 8-aligned.
  const uint64_t record = (sizeof(xdpfw_event) + 4 + sizeof(perf_event_header) + 7) / 8 * 8;
  uint64_t per_cpu = opts_.event_burst / static_cast<uint64_t>(ncpus_) + 1;
  uint64_t want = 2 * per_cpu * record / page_size() + 1;
  size_t pages = 256;  // 1 MiB
  while (pages < want && pages < 4096) pages *= 2;
  return pages;
}

int KernelDatapath::events_fd() {
  if (!events_) {
    // The ring wakes its reader once a watermark of bytes waits, not per
    // event: a wakeup per event (libbpf's default) is an irq_work and a
    // context switch for each one, which at hundreds of thousands of events
    // a second costs the packet path more than the event itself. The loop
    // also reads the rings every 100 ms (xdpfw_plugin.cpp), so a lone event
    // waits that long at most.
    perf_event_attr attr{};
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_BPF_OUTPUT;
    attr.sample_type = PERF_SAMPLE_RAW;
    attr.sample_period = 1;
    attr.watermark = 1;
    perf_buffer_raw_opts opts{};
    opts.sz = sizeof opts;
    auto on_event = [](void* self, int, perf_event_header* h) {
      auto* dp = static_cast<KernelDatapath*>(self);
      if (h->type == PERF_RECORD_SAMPLE) {
        struct Sample {
          perf_event_header h;
          uint32_t size;
          char data[];
        };
        auto* s = reinterpret_cast<Sample*>(h);
        if (s->size >= sizeof(xdpfw_event) && dp->each_event_) {
          xdpfw_event ev;
          std::memcpy(&ev, s->data, sizeof ev);
          (*dp->each_event_)(ev);
        }
      } else if (h->type == PERF_RECORD_LOST) {
        struct Lost {
          perf_event_header h;
          uint64_t id;
          uint64_t lost;
        };
        dp->events_lost_ += reinterpret_cast<Lost*>(h)->lost;
      }
      return LIBBPF_PERF_EVENT_CONT;
    };
    // Rings past the locked-memory limit (RLIMIT_MEMLOCK, for an agent
    // without CAP_IPC_LOCK) are refused: halved until they fit.
    for (size_t pages = event_ring_pages();; pages /= 2) {
      attr.wakeup_watermark = static_cast<uint32_t>(pages * page_size() / 8);
      events_ = perf_buffer__new_raw(events_map_fd(), pages, &attr, on_event, this, &opts);
      if (events_ || (errno != EPERM && errno != ENOMEM) || pages <= 8) break;
    }
    if (!events_) throw DatapathError("cannot open the events perf buffer: " + errstr(errno));
  }
  return perf_buffer__epoll_fd(events_);
}

uint64_t KernelDatapath::read_events(const std::function<void(const xdpfw_event&)>& each) {
  events_fd();
  each_event_ = &each;
  // poll(0) empties libbpf's inner epoll ready list; without it a later
  // wakeup may raise no new edge on the fd the host loop watches, and
  // events would wait in the ring. consume then reads every ring.
  perf_buffer__poll(events_, 0);
  perf_buffer__consume(events_);
  each_event_ = nullptr;
  return std::exchange(events_lost_, 0);
}

}  // namespace xdpfw
