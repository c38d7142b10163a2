// link_monitor.hpp: what the rest of xdpfw knows about network links, and
// the interface of a source of link events (the libnl one in
// libnl_link_monitor.hpp; tests may hand in their own).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace xdpfw::netlink {

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::string kind;  // "veth", "vlan", "dummy", ...; "" for physical NICs
  bool up = false;
  bool running = false;
  bool operator==(const LinkInfo&) const = default;
};

struct LinkEvent {
  enum class Type { added, removed, changed } type;
  LinkInfo link;
  std::optional<std::string> old_name;  // set when renamed
};

using LinkHandler = std::function<void(const LinkEvent&)>;

class LinkMonitor {
 public:
  virtual ~LinkMonitor() = default;
  // Reports every current link as added, then every change, on the caller's loop.
  virtual void start(LinkHandler handler) = 0;
  virtual const std::map<int, LinkInfo>& links() const = 0;
};

}  // namespace xdpfw::netlink
