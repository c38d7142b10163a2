// attach_manager.hpp: which interfaces carry the firewall. Follows link
// events, the configured patterns and the operator's manual overrides, and
// asks an Attacher (the kernel, or a fake in unit tests) to act.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "firewall_config.hpp"

namespace xdpfw {

struct AttachOutcome {
  bool ok = false;
  std::string mode;  // "native" or "generic" when ok
  uint32_t prog_id = 0;
  uint32_t foreign_id = 0;  // another program sits there (not ok)
  std::string error;        // why not (not ok)
  std::string note;         // ok, but worth saying: why auto mode fell back to generic
};

class Attacher {
 public:
  virtual ~Attacher() = default;
  virtual AttachOutcome attach(int ifindex, const std::string& name, AttachMode mode,
                               bool takeover) = 0;
  virtual void detach(int ifindex) = 0;
  // The program the links point to now (it changes when the datapath's maps
  // are resized); 0: the one each attach answered.
  virtual uint32_t prog_id() const { return 0; }
};

struct Interface {
  int ifindex = 0;
  std::string name, kind;
  bool up = false;
  bool selected = false;  // by the patterns
  enum class Manual { none, attach, detach } manual = Manual::none;
  bool attached = false;
  std::string mode;
  uint32_t prog_id = 0;
  std::time_t since = 0;  // of the current attached/detached state
  std::string last_error;
};

class AttachManager {
 public:
  using Log = std::function<void(int level, const std::string&)>;  // 0 error .. 3 debug
  AttachManager(Attacher& attacher, FirewallConfig cfg, Log log);

  enum class Change { added, removed, changed };
  void on_link(Change change, int ifindex, const std::string& name, const std::string& kind,
               bool up);
  void reconfigure(const FirewallConfig& cfg);

  // Manual control by name. It holds for the agent's lifetime (also across
  // the interface being re-created) until "auto NAME". Returns an error
  // message, or nothing on success.
  std::optional<std::string> set_manual(const std::string& name, Interface::Manual how);

  const std::map<int, Interface>& interfaces() const { return ifaces_; }
  // The program on an attached interface now.
  uint32_t prog_id(const Interface& i) const {
    uint32_t now = attacher_.prog_id();
    return i.attached && now ? now : i.prog_id;
  }
  size_t detach_all();  // answers how many were attached

 private:
  void evaluate(Interface& i);

  Attacher& attacher_;
  FirewallConfig cfg_;
  Log log_;
  std::map<int, Interface> ifaces_;
  std::map<std::string, Interface::Manual> manual_;
};

}  // namespace xdpfw
