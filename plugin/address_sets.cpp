// address_sets.cpp: see address_sets.hpp.
#include "address_sets.hpp"

#include <time.h>

#include <algorithm>
#include <limits>
#include <sstream>

#include "datapath.hpp"

namespace xdpfw {
namespace {

template <typename T>
std::optional<T> parse_number(std::string_view v) {
  return parse_uint<T>(v, std::numeric_limits<T>::max());
}

// The longest a timeout may be: ten years (and far from overflowing ns).
constexpr uint64_t max_timeout_s = 10ULL * 366 * 86400;

uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

bool covers(const AddressSets::Key& outer, const AddressSets::Key& inner) {
  if (outer.fam != inner.fam || outer.len > inner.len) return false;
  Prefix p{static_cast<Family>(outer.fam), outer.addr, outer.len};
  return p.contains(inner.addr);
}

AddressSets::Key truncated(const AddressSets::Key& k, uint8_t len) {
  Prefix p{static_cast<Family>(k.fam), k.addr, len};
  p.clear_host_bits();
  return AddressSets::key_of(p);
}

uint8_t max_len(uint8_t fam) {
  return fam == 0 ? 32 : 128;
}

}  // namespace

uint64_t monotonic_coarse_ns() {
  return clock_ns(CLOCK_MONOTONIC_COARSE);
}

uint64_t realtime_ms() {
  return clock_ns(CLOCK_REALTIME) / 1000000ULL;
}

uint64_t parse_duration(std::string_view text, std::string_view field) {
  // "-1" and "-1s": fail2ban's <bantime> of a ban for ever.
  if (text == "none" || text == "-1" || text == "-1s") return 0;
  static constexpr std::pair<char, uint64_t> units[] = {
      {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
  uint64_t mult = 1;
  std::string_view digits = text;
  if (!text.empty()) {
    for (auto [u, m] : units)
      if (text.back() == u) {
        mult = m;
        digits = text.substr(0, text.size() - 1);
      }
  }
  auto n = parse_number<uint64_t>(digits);
  if (!n || *n > max_timeout_s / mult)
    throw SetError(std::string(field) + ": " + quote(text) +
                   " is not a duration (expected N, Ns, Nm, Nh, Nd or Nw up to 10 years, or "
                   "none)");
  return *n * mult;
}

std::string format_duration(uint64_t s) {
  if (s == 0) return "0s";
  std::string out;
  for (auto [unit, len] : {std::pair<const char*, uint64_t>{"d", 86400}, {"h", 3600}, {"m", 60}}) {
    if (s >= len) {
      out += std::to_string(s / len) + unit;
      s %= len;
    }
  }
  if (s) out += std::to_string(s) + "s";
  return out;
}

SetSpec parse_set_spec(std::string_view text) {
  auto words = split_words(text);
  if (words.empty()) throw SetError("set: missing name (expected NAME [timeout DUR] [max N])");
  SetSpec s;
  if (!valid_set_name(words[0]))
    throw SetError("set: " + quote(words[0]) +
                   " is not a set name (expected 1-32 of letters, digits, '_', '.', '-', "
                   "starting with a letter or digit)");
  s.name = std::string(words[0]);
  bool timeout = false, max = false;
  for (size_t i = 1; i < words.size(); i += 2) {
    std::string_view key = words[i];
    if (key != "timeout" && key != "max")
      throw SetError("set " + s.name + ": " + quote(key) +
                     " is not a set option (expected timeout DUR or max N)");
    bool& seen = key == "timeout" ? timeout : max;
    if (seen) throw SetError("set " + s.name + ": " + std::string(key) + " given twice");
    seen = true;
    if (i + 1 >= words.size())
      throw SetError("set " + s.name + ": " + std::string(key) + ": missing value");
    if (key == "timeout") {
      s.timeout_s = parse_duration(words[i + 1], "timeout");
    } else {
      auto n = parse_number<uint32_t>(words[i + 1]);
      if (!n || *n == 0)
        throw SetError("set " + s.name + ": max: " + quote(words[i + 1]) +
                       " is not a number of elements (expected 1-4294967295)");
      s.max = *n;
    }
  }
  return s;
}

std::string format_set_spec(const SetSpec& s) {
  std::string out = s.name;
  if (s.timeout_s) out += " timeout " + format_duration(s.timeout_s);
  if (s.max) out += " max " + std::to_string(s.max);
  return out;
}

std::vector<SetItem> parse_set_items(std::string_view text) {
  std::vector<SetItem> items;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto words = split_words(line);
    if (words.empty()) continue;
    try {
      SetItem it;
      it.prefix = parse_prefix(words[0], "element");
      if (words.size() == 3 && words[1] == "timeout")
        it.timeout_s = parse_duration(words[2], "timeout");
      else if (words.size() != 1)
        throw SetError("expected ADDR[/LEN] [timeout DUR], got " + quote(line));
      items.push_back(it);
    } catch (const std::exception& e) {
      throw SetError("line " + std::to_string(line_no) + ": " + e.what());
    }
  }
  return items;
}

AddressSets::AddressSets(Datapath& dp, Clock clock)
    : dp_(dp), clock_(std::move(clock)), capacity_(dp.max_set_elements()) {}

AddressSets::Key AddressSets::key_of(const Prefix& p) {
  return Key{static_cast<uint8_t>(p.family), p.addr, p.len};
}

Prefix AddressSets::prefix_of(const Key& k) {
  return Prefix{static_cast<Family>(k.fam), k.addr, k.len};
}

const AddressSets::Set* AddressSets::find(std::string_view name) const {
  auto it = sets_.find(name);
  return it == sets_.end() ? nullptr : &it->second;
}

const AddressSets::Set* AddressSets::find(uint16_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : find(it->second);
}

AddressSets::Set& AddressSets::get(std::string_view name) {
  auto it = sets_.find(name);
  if (it == sets_.end())
    throw SetError("no set " + quote(name) + " ('set list' shows them; 'set create " +
                   std::string(name) + "' makes it)");
  return it->second;
}

const AddressSets::Set& AddressSets::create(const SetSpec& spec, uint16_t id) {
  if (!valid_set_name(spec.name)) throw SetError("set: " + quote(spec.name) + " is not a set name");
  if (sets_.count(spec.name)) throw SetError("set " + quote(spec.name) + " exists already");
  if (id == 0) {
    for (uint16_t i = 1; i < XDPFW_MAX_SETS && !id; ++i)
      if (!by_id_.count(i)) id = i;
    if (id == 0)
      throw SetError("set create: " + std::to_string(XDPFW_MAX_SETS - 1) +
                     " sets exist, the most there can be (set destroy frees one)");
  } else if (id >= XDPFW_MAX_SETS || by_id_.count(id)) {
    throw SetError("set " + quote(spec.name) + ": id " + std::to_string(id) + " is taken");
  }
  Set& s = sets_[spec.name];
  s.id = id;
  s.spec = spec;
  by_id_[id] = spec.name;
  // A set starts empty under its first tag (what it had before, if
  // anything, is swept by sync() or overwritten by its own writes).
  if (writing_) dp_.switch_set_tag(id, tag(s, s.gen));
  return s;
}

void AddressSets::configure(const SetSpec& spec) {
  Set& s = get(spec.name);
  if (spec.max && spec.max < s.elems.size())
    throw SetError("set " + spec.name + ": max " + std::to_string(spec.max) + " is below the " +
                   std::to_string(s.elems.size()) + " elements it holds");
  s.spec = spec;
}

void AddressSets::destroy(std::string_view name) {
  Set& s = get(name);
  if (writing_) dp_.switch_set_tag(s.id, 0);  // no packet finds it from here on
  flush(name);
  by_id_.erase(s.id);
  sets_.erase(sets_.find(name));
}

uint64_t AddressSets::expiry(const Set& s, std::optional<uint64_t> timeout_s) const {
  uint64_t t = timeout_s.value_or(s.spec.timeout_s);
  return t ? now() + t * 1000000000ULL : never;
}

// The effective time of the element at k (inclusive) or of the nearest
// element covering it; 0 when none does.
uint64_t AddressSets::cover_eff(const Set& s, const Key& k, bool inclusive) const {
  for (int l = inclusive ? k.len : k.len - 1; l >= 0; --l) {
    if (!s.lens[k.fam & 1][l]) continue;
    auto it = s.elems.find(l == k.len ? k : truncated(k, static_cast<uint8_t>(l)));
    if (it != s.elems.end()) return it->second.eff;
  }
  return 0;
}

void AddressSets::write(Set& s, std::map<Key, Element>::iterator it, uint64_t eff, bool fresh) {
  it->second.eff = eff;
  if (writing_) dp_.write_element(tag(s, s.gen), prefix_of(it->first), eff, fresh);
}

void AddressSets::set_own(Set& s, std::map<Key, Element>::iterator it, uint64_t own) {
  if (it->second.own != never) s.expiring.erase({it->second.own, it->first});
  it->second.own = own;
  if (own != never) s.expiring.insert({own, it->first});
}

// After the element at k changed its own time or went: the effective times
// of the elements inside it, each the latest of its own and its nearest
// cover's (a sweep in key order: covers come before what they cover).
void AddressSets::refresh_below(Set& s, const Key& k) {
  if (k.len >= max_len(k.fam)) return;
  Key lo = k;
  lo.len = static_cast<uint8_t>(k.len + 1);
  auto it = s.elems.lower_bound(lo);
  if (it == s.elems.end() || !covers(k, it->first)) return;
  uint64_t base = cover_eff(s, k, true);
  std::vector<std::pair<Key, uint64_t>> stack;
  for (; it != s.elems.end() && covers(k, it->first); ++it) {
    while (!stack.empty() && !covers(stack.back().first, it->first)) stack.pop_back();
    uint64_t eff = std::max(it->second.own, stack.empty() ? base : stack.back().second);
    if (eff != it->second.eff) write(s, it, eff, false);
    stack.emplace_back(it->first, eff);
  }
}

bool AddressSets::add(std::string_view name, const Prefix& p, std::optional<uint64_t> timeout_s) {
  Set& s = get(name);
  Key k = key_of(p);
  uint64_t own = expiry(s, timeout_s);
  auto it = s.elems.find(k);
  bool fresh = it == s.elems.end();
  if (fresh) {
    uint64_t limit = s.spec.max ? s.spec.max : capacity_;
    if (s.elems.size() >= limit)
      throw SetError("set " + s.spec.name + " is full: " + std::to_string(s.elems.size()) +
                     " elements (max " + std::to_string(limit) + ")");
    if (total_ >= capacity_)
      throw SetError("the sets hold " + std::to_string(total_) +
                     " elements, as many as max-set-elements allows");
    it = s.elems.emplace(k, Element{never, never}).first;
    ++s.lens[k.fam & 1][k.len];
    ++total_;
  } else if (it->second.own == own) {
    return false;
  }
  set_own(s, it, own);
  uint64_t eff = std::max(own, cover_eff(s, k, false));
  try {
    if (fresh || eff != it->second.eff) write(s, it, eff, fresh);
  } catch (...) {
    if (fresh) {  // not in the datapath: not in the mirror either
      set_own(s, it, never);
      --s.lens[k.fam & 1][k.len];
      --total_;
      s.elems.erase(it);
    }
    throw;
  }
  refresh_below(s, k);
  return fresh;
}

void AddressSets::erase(Set& s, std::map<Key, Element>::iterator it) {
  Key k = it->first;
  if (writing_) dp_.erase_element(tag(s, s.gen), prefix_of(k));
  set_own(s, it, never);
  --s.lens[k.fam & 1][k.len];
  --total_;
  s.elems.erase(it);
}

bool AddressSets::del(std::string_view name, const Prefix& p) {
  Set& s = get(name);
  Key k = key_of(p);
  auto it = s.elems.find(k);
  if (it == s.elems.end()) return false;
  erase(s, it);
  refresh_below(s, k);
  return true;
}

size_t AddressSets::flush(std::string_view name) {
  Set& s = get(name);
  size_t n = s.elems.size();
  while (!s.elems.empty()) erase(s, s.elems.begin());
  return n;
}

// Effective times of a whole element map, in one sweep.
void AddressSets::compute_eff(std::map<Key, Element>& elems) {
  std::vector<std::pair<Key, uint64_t>> stack;
  for (auto& [k, e] : elems) {
    while (!stack.empty() && !covers(stack.back().first, k)) stack.pop_back();
    e.eff = std::max(e.own, stack.empty() ? 0 : stack.back().second);
    stack.emplace_back(k, e.eff);
  }
}

void AddressSets::load(std::string_view name, const std::vector<SetItem>& items) {
  Set& s = get(name);
  Set next;
  next.id = s.id;
  next.spec = s.spec;
  next.gen = s.gen ^ 1;
  for (const SetItem& item : items) {
    Key k = key_of(item.prefix);
    uint64_t own = expiry(s, item.timeout_s);
    auto [it, fresh] = next.elems.insert_or_assign(k, Element{own, own});
    (void)it;
    if (fresh) ++next.lens[k.fam & 1][k.len];
  }
  uint64_t limit = s.spec.max ? s.spec.max : capacity_;
  if (next.elems.size() > limit)
    throw SetError("set load: " + std::to_string(next.elems.size()) + " elements exceed set " +
                   s.spec.name + "'s max of " + std::to_string(limit));
  // Old and new are both in the datapath until the tag switches.
  if (total_ + next.elems.size() > capacity_)
    throw SetError("set load: " + std::to_string(next.elems.size()) +
                   " elements do not fit beside the " + std::to_string(total_) +
                   " the sets hold now (max-set-elements " + std::to_string(capacity_) +
                   "; the old content stays until the new one is written)");
  compute_eff(next.elems);
  for (auto& [k, e] : next.elems)
    if (e.own != never) next.expiring.insert({e.own, k});
  if (writing_) {
    uint32_t new_tag = tag(next, next.gen);
    auto done = next.elems.begin();
    try {
      dp_.reserve_elements(next.elems.size());
      for (; done != next.elems.end(); ++done)
        dp_.write_element(new_tag, prefix_of(done->first), done->second.eff, true);
      dp_.switch_set_tag(s.id, new_tag);
    } catch (...) {
      for (auto it = next.elems.begin(); it != done; ++it) try {
          dp_.erase_element(new_tag, prefix_of(it->first));
        } catch (...) {
        }
      throw;
    }
    uint32_t old_tag = tag(s, s.gen);
    for (const auto& [k, e] : s.elems) dp_.erase_element(old_tag, prefix_of(k));
  }
  total_ = total_ - s.elems.size() + next.elems.size();
  s = std::move(next);
}

size_t AddressSets::reap() {
  uint64_t t = now();
  size_t n = 0;
  for (auto& [name, s] : sets_) {
    while (!s.expiring.empty() && s.expiring.begin()->first <= t) {
      auto it = s.elems.find(s.expiring.begin()->second);
      erase(s, it);
      ++n;
    }
  }
  return n;
}

bool AddressSets::contains(uint16_t set, Family f, const std::array<uint8_t, 16>& addr) const {
  const Set* s = find(set);
  if (!s) return false;
  uint8_t fam = static_cast<uint8_t>(f);
  Key k{fam, addr, max_len(fam)};
  for (int l = k.len; l >= 0; --l) {
    if (!s->lens[fam & 1][l]) continue;
    auto it = s->elems.find(truncated(k, static_cast<uint8_t>(l)));
    if (it != s->elems.end()) return it->second.eff > now();
  }
  return false;
}

std::optional<uint64_t> AddressSets::remaining_s(const Element& e) const {
  if (e.own == never) return std::nullopt;
  uint64_t t = now();
  return e.own > t ? (e.own - t + 999999999ULL) / 1000000000ULL : 0;
}

// ---- persistence ----

std::string AddressSets::journal_create(const Set& s) {
  return "create " + s.spec.name + " id " + std::to_string(s.id) + " timeout " +
         std::to_string(s.spec.timeout_s) + " max " + std::to_string(s.spec.max);
}

std::string AddressSets::journal_add(const Set& s, const Key& k) const {
  const Element& e = s.elems.at(k);
  std::string line = "add " + s.spec.name + " " + format_prefix(prefix_of(k));
  if (e.own != never) {
    uint64_t t = now();
    uint64_t left_ms = e.own > t ? (e.own - t) / 1000000ULL : 0;
    line += " until " + std::to_string(clock_.real_ms() + left_ms);
  }
  return line;
}

std::string AddressSets::journal_del(std::string_view set, const Prefix& p) {
  return "del " + std::string(set) + " " + format_prefix(p);
}

std::string AddressSets::journal_flush(std::string_view set) {
  return "flush " + std::string(set);
}

std::string AddressSets::journal_destroy(std::string_view set) {
  return "destroy " + std::string(set);
}

std::string AddressSets::snapshot() const {
  std::string out;
  for (const auto& [name, s] : sets_) {
    out += journal_create(s) + "\n";
    for (const auto& [k, e] : s.elems) out += journal_add(s, k) + "\n";
  }
  return out;
}

// Lines: "create NAME id N timeout S max M", "add NAME PREFIX [until MS]",
// "del NAME PREFIX", "flush NAME", "destroy NAME", "load NAME" (the set
// emptied: its "add" lines follow). Idempotent where a crash could have
// left a line already folded into the state.
void AddressSets::replay(std::string_view line) {
  bool was = writing_;
  writing_ = false;
  struct Restore {
    bool& w;
    bool v;
    ~Restore() { w = v; }
  } restore{writing_, was};
  auto w = split_words(line);
  auto need = [&](size_t n) {
    if (w.size() != n) throw SetError("expected " + std::to_string(n) + " words");
  };
  if (w.empty()) throw SetError("empty line");
  std::string_view op = w[0];
  if (op == "create") {
    need(8);
    if (w[2] != "id" || w[4] != "timeout" || w[6] != "max")
      throw SetError("expected create NAME id N timeout S max M");
    auto id = parse_number<uint16_t>(w[3]);
    auto timeout = parse_number<uint64_t>(w[5]);
    auto max = parse_number<uint32_t>(w[7]);
    if (!id || !*id || !timeout || *timeout > max_timeout_s || !max) throw SetError("bad numbers");
    SetSpec spec{std::string(w[1]), *timeout, *max};
    if (const Set* s = find(spec.name); s && s->id == *id) return configure(spec);
    create(spec, *id);
  } else if (op == "add") {
    if (w.size() != 3 && !(w.size() == 5 && w[3] == "until"))
      throw SetError("expected add NAME PREFIX [until MS]");
    Prefix p = parse_prefix(w[2], "element");
    std::optional<uint64_t> timeout_s = 0;
    if (w.size() == 5) {
      auto until = parse_number<uint64_t>(w[4]);
      if (!until) throw SetError("bad until");
      uint64_t real = clock_.real_ms();
      if (*until <= real) return;  // expired while the agent was away
      timeout_s = std::min<uint64_t>((*until - real + 999) / 1000, max_timeout_s);
    }
    add(w[1], p, timeout_s);
  } else if (op == "del") {
    need(3);
    del(w[1], parse_prefix(w[2], "element"));
  } else if (op == "flush" || op == "load") {
    need(2);
    flush(w[1]);
  } else if (op == "destroy") {
    need(2);
    if (find(w[1])) destroy(w[1]);
  } else {
    throw SetError("unknown operation " + quote(op));
  }
}

// Every set written anew under its other tag (what the maps held before,
// pinned from an earlier run, may differ from the state), then whatever no
// set owns swept.
void AddressSets::sync() {
  std::set<uint32_t> live;
  for (uint16_t id = 1; id < XDPFW_MAX_SETS; ++id)
    if (!by_id_.count(id) && dp_.set_tag(id)) dp_.switch_set_tag(id, 0);
  for (auto& [name, s] : sets_) {
    uint32_t was = dp_.set_tag(s.id);
    s.gen = was == tag(s, 0) ? 1 : 0;
    dp_.reserve_elements(s.elems.size());
    for (auto& [k, e] : s.elems) dp_.write_element(tag(s, s.gen), prefix_of(k), e.eff, true);
    dp_.switch_set_tag(s.id, tag(s, s.gen));
    live.insert(tag(s, s.gen));
  }
  for (const auto& [t, p] : dp_.set_elements())
    if (!live.count(t)) dp_.erase_element(t, p);
}

}  // namespace xdpfw
