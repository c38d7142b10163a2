// flat_map.hpp: a hash map in two flat arrays, for the compiler's tables of
// 100,000 entries and more (docs/ARCHITECTURE.md, "Agent memory"). The
// entries sit side by side in one vector (iterated in that order, like a
// vector), and an index of 32-bit slots (open addressing, linear probing,
// erase by backward shift: no tombstones) finds them. No node per entry:
// a std::unordered_map spends a node allocation (16 to 32 bytes of malloc
// overhead and a next pointer) and a bucket pointer on each.
//
// The subset of std::unordered_map the compiler and the datapath use:
// begin/end, find, count, contains, at, operator[], emplace, try_emplace,
// erase (key or iterator), reserve, size, empty, clear, ==. Differences: an
// insert or an erase invalidates every iterator and reference (erase moves
// the last entry into the hole); entries are std::pair<K, V>, not
// pair<const K, V>.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace xdpfw {

template <typename K, typename V, typename Hash = std::hash<K>, typename Eq = std::equal_to<K>>
class FlatMap {
 public:
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<K, V>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  FlatMap() = default;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }

  void clear() {
    entries_.clear();
    index_.clear();
    mask_ = 0;
  }
  // Room for n entries without growing either array.
  void reserve(size_t n) {
    if (n > entries_.capacity()) entries_.reserve(n);
    if (n > capacity()) rehash(slots_for(n));
  }
  // The entries, leaving the map empty (to change keys in place), and a map
  // of entries whose keys are unique (not checked).
  std::vector<value_type> release() {
    index_.clear();
    index_.shrink_to_fit();
    mask_ = 0;
    return std::move(entries_);
  }
  static FlatMap from_unique(std::vector<value_type> entries) {
    FlatMap m;
    m.entries_ = std::move(entries);
    m.rehash(slots_for(m.entries_.size()));
    return m;
  }
  // Gives back what the entries do not use (after a build whose reserve
  // was a guess).
  void shrink_to_fit() {
    entries_.shrink_to_fit();
    size_t want = slots_for(entries_.size());
    if (want < index_.size()) rehash(want);
  }

  iterator find(const K& k) { return entries_.begin() + find_index(k); }
  const_iterator find(const K& k) const { return entries_.begin() + find_index(k); }
  size_t count(const K& k) const { return find_index(k) != entries_.size() ? 1 : 0; }
  bool contains(const K& k) const { return count(k) != 0; }
  V& at(const K& k) {
    size_t i = find_index(k);
    if (i == entries_.size()) throw std::out_of_range("FlatMap::at: no such key");
    return entries_[i].second;
  }
  const V& at(const K& k) const {
    size_t i = find_index(k);
    if (i == entries_.size()) throw std::out_of_range("FlatMap::at: no such key");
    return entries_[i].second;
  }
  V& operator[](const K& k) { return try_emplace(k).first->second; }

  template <typename... Args>
  std::pair<iterator, bool> try_emplace(const K& k, Args&&... args) {
    if (!index_.empty()) {
      size_t i = find_index(k);
      if (i != entries_.size()) return {entries_.begin() + i, false};
    }
    grow_for(entries_.size() + 1);
    entries_.emplace_back(std::piecewise_construct, std::forward_as_tuple(k),
                          std::forward_as_tuple(std::forward<Args>(args)...));
    place(entries_.size() - 1);
    return {entries_.end() - 1, true};
  }
  template <typename Val>
  std::pair<iterator, bool> emplace(const K& k, Val&& v) {
    return try_emplace(k, std::forward<Val>(v));
  }

  size_t erase(const K& k) {
    if (index_.empty()) return 0;
    size_t s = slot_of(k);
    if (index_[s] == 0) return 0;
    erase_slot(s);
    return 1;
  }
  void erase(const_iterator it) { erase(it->first); }
  void erase(iterator it) { erase(it->first); }

  // The same entries, in any order.
  bool operator==(const FlatMap& o) const {
    if (size() != o.size()) return false;
    for (const auto& [k, v] : entries_) {
      auto it = o.find(k);
      if (it == o.end() || !(it->second == v)) return false;
    }
    return true;
  }

 private:
  // Slots: a power of two, at most 7/8 full.
  size_t capacity() const { return index_.size() - index_.size() / 8; }
  static size_t slots_for(size_t n) {
    size_t s = 16;
    while (s - s / 8 < n) s *= 2;
    return s;
  }
  size_t home(const K& k) const {
    // Fibonacci hashing: a std::hash that is the identity (integers) still
    // spreads over the whole index.
    return static_cast<size_t>((static_cast<uint64_t>(Hash{}(k)) * 0x9E3779B97F4A7C15ull) >>
                               shift_);
  }
  // The slot holding k, or the empty slot where it would go.
  size_t slot_of(const K& k) const {
    for (size_t s = home(k);; s = (s + 1) & mask_) {
      uint32_t e = index_[s];
      if (e == 0 || Eq{}(entries_[e - 1].first, k)) return s;
    }
  }
  size_t find_index(const K& k) const {
    if (index_.empty()) return entries_.size();
    uint32_t e = index_[slot_of(k)];
    return e == 0 ? entries_.size() : e - 1;
  }
  void place(size_t i) {
    size_t s = slot_of(entries_[i].first);
    index_[s] = static_cast<uint32_t>(i + 1);
  }
  void grow_for(size_t n) {
    if (n > entries_.capacity()) {
      if (n > UINT32_MAX - 1) throw std::length_error("FlatMap: too many entries");
      // Grow by an eighth: a set of 100,000 entries that gains a rule
      // should not hold room for 200,000 from then on.
      entries_.reserve(std::max<size_t>(n, entries_.size() + entries_.size() / 8 + 16));
    }
    if (n > capacity()) rehash(slots_for(n));
  }
  void rehash(size_t slots) {
    index_.assign(slots, 0);
    mask_ = slots - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(slots));
    for (size_t i = 0; i < entries_.size(); ++i) place(i);
  }
  // Empties slot s (backward shift), then moves the last entry into the
  // hole its entry leaves.
  void erase_slot(size_t s) {
    size_t i = index_[s] - 1;
    for (size_t hole = s, j = (s + 1) & mask_;; j = (j + 1) & mask_) {
      uint32_t e = index_[j];
      if (e == 0) {
        index_[hole] = 0;
        break;
      }
      size_t h = home(entries_[e - 1].first);
      // Entry at j may move to the hole when its home is not in (hole, j].
      bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!stays) {
        index_[hole] = e;
        hole = j;
      }
    }
    size_t last = entries_.size() - 1;
    if (i != last) {
      index_[slot_of(entries_[last].first)] = static_cast<uint32_t>(i + 1);
      entries_[i] = std::move(entries_[last]);
    }
    entries_.pop_back();
  }

  std::vector<value_type> entries_;
  std::vector<uint32_t> index_;  // 0: empty; else entry index + 1
  size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace xdpfw
