// rule_store.cpp: see rule_store.hpp.
#include "rule_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "rules_file.hpp"

namespace xdpfw {
namespace {
void sort_rules(std::vector<Rule>& rs) {
  std::sort(rs.begin(), rs.end(),
            [](const Rule& a, const Rule& b) { return a.order() < b.order(); });
}
}  // namespace

uint32_t RuleStore::next_id() const {
  uint32_t id = high_water_id_;
  for (const Rule& r : rules_) id = std::max(id, r.id);
  return id + 1;
}

uint32_t RuleStore::last_priority() const {
  uint32_t p = default_priority;
  for (const Rule& r : rules_) p = std::max(p, *r.priority);
  return p;
}

std::vector<Rule> RuleStore::with_added(Rule r, uint32_t* id_out) const {
  if (r.id) {
    for (const Rule& x : rules_)
      if (x.id == r.id)
        throw RuleError("id: " + std::to_string(r.id) +
                        " is taken (rule del it first, or omit id)");
  } else {
    if (next_id() == 0) throw RuleError("id: no ids left");
    r.id = next_id();
  }
  if (!r.priority) r.priority = last_priority();
  std::vector<Rule> out = rules_;
  out.push_back(r);
  sort_rules(out);
  if (id_out) *id_out = r.id;
  return out;
}

std::vector<Rule> RuleStore::without(uint32_t id) const {
  std::vector<Rule> out = rules_;
  auto it = std::find_if(out.begin(), out.end(), [&](const Rule& r) { return r.id == id; });
  if (it == out.end())
    throw RuleError("id: no rule " + std::to_string(id) + " ('rule list' shows them)");
  out.erase(it);
  return out;
}

std::vector<Rule> RuleStore::parsed(const std::string& name, const std::string& text) const {
  return parse_rules_text(name, text);  // commit() sorts
}

void RuleStore::commit(std::vector<Rule> rules) {
  for (const Rule& r : rules_) high_water_id_ = std::max(high_water_id_, r.id);
  sort_rules(rules);
  rules_ = std::move(rules);
}

std::string RuleStore::text() const {
  std::string o;
  o.reserve(rules_.size() * 96);
  for (const Rule& r : rules_) {
    o += format_rule(r);
    o += '\n';
  }
  return o;
}

void RuleStore::save(const std::string& path, bool durable) const {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::string body = "# written by xdpfw 'save'\n" + text();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw RuleError("save: cannot write " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < body.size()) {
    ssize_t n = ::write(fd, body.data() + off, body.size() - off);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw RuleError("save: writing " + tmp + ": " + std::strerror(e));
    }
    off += static_cast<size_t>(n);
  }
  if ((durable && ::fsync(fd) != 0) || ::close(fd) != 0 ||
      ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw RuleError("save: " + path + ": " + std::strerror(e));
  }
}

}  // namespace xdpfw
