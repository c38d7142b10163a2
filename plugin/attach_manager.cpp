// attach_manager.cpp: see attach_manager.hpp.
#include "attach_manager.hpp"

namespace xdpfw {

AttachManager::AttachManager(Attacher& attacher, FirewallConfig cfg, Log log)
    : attacher_(attacher), cfg_(std::move(cfg)), log_(std::move(log)) {}

void AttachManager::evaluate(Interface& i) {
  auto st = manual_.find(i.name);
  i.manual = st == manual_.end() ? Interface::Manual::none : st->second;
  i.selected = cfg_.selects(i.name);
  bool want =
      i.manual == Interface::Manual::attach || (i.manual == Interface::Manual::none && i.selected);
  if (want && !i.attached) {
    AttachOutcome o = attacher_.attach(i.ifindex, i.name, cfg_.mode, cfg_.takeover);
    if (o.ok) {
      i.attached = true;
      i.mode = o.mode;
      i.prog_id = o.prog_id;
      i.since = std::time(nullptr);
      i.last_error.clear();
      log_(o.note.empty() ? 2 : 1, "attached to " + i.name + " (ifindex " +
                                       std::to_string(i.ifindex) + ", " + o.mode +
                                       (o.note.empty() ? "" : "; " + o.note) + ")");
    } else if (o.error != i.last_error) {
      i.last_error = o.error;
      log_(o.foreign_id ? 1 : 0, "cannot attach to " + i.name + ": " + o.error);
    }
  } else if (!want && i.attached) {
    attacher_.detach(i.ifindex);
    i.attached = false;
    i.mode.clear();
    i.prog_id = 0;
    i.since = std::time(nullptr);
    log_(2, "detached from " + i.name);
  } else if (!want) {
    i.last_error.clear();
  }
}

void AttachManager::on_link(Change change, int ifindex, const std::string& name,
                            const std::string& kind, bool up) {
  if (change == Change::removed) {
    auto it = ifaces_.find(ifindex);
    if (it == ifaces_.end()) return;
    // The kernel took the program off with the device; release our link.
    bool was_attached = it->second.attached;
    if (was_attached) attacher_.detach(ifindex);
    if (was_attached)
      log_(1, "interface " + it->second.name + " (ifindex " + std::to_string(ifindex) +
                  "), which the firewall was attached to, is gone");
    else
      log_(3, "interface " + it->second.name + " is gone");
    ifaces_.erase(it);
    return;
  }
  Interface& i = ifaces_[ifindex];
  bool fresh = i.ifindex == 0;
  if (fresh) {
    i.ifindex = ifindex;
    i.since = std::time(nullptr);
  } else if (i.name != name) {
    log_(2, "interface " + i.name + " renamed to " + name);
  }
  i.name = name;
  i.kind = kind;
  i.up = up;
  evaluate(i);
}

void AttachManager::reconfigure(const FirewallConfig& cfg) {
  cfg_ = cfg;
  for (auto& [idx, i] : ifaces_) evaluate(i);
}

std::optional<std::string> AttachManager::set_manual(const std::string& name,
                                                     Interface::Manual how) {
  if (how == Interface::Manual::none)
    manual_.erase(name);
  else
    manual_[name] = how;
  for (auto& [idx, i] : ifaces_)
    if (i.name == name) {
      evaluate(i);
      if (how == Interface::Manual::attach && !i.attached) return i.last_error;
      return std::nullopt;
    }
  return std::nullopt;  // no such link now: the override waits for it
}

size_t AttachManager::detach_all() {
  size_t n = 0;
  for (auto& [idx, i] : ifaces_)
    if (i.attached) {
      attacher_.detach(idx);
      i.attached = false;
      ++n;
    }
  return n;
}

}  // namespace xdpfw
