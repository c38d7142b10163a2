// agent_lock.hpp: one agent per pin folder and per state folder. Two agents
// on the same pinned maps would flip the live filter between their rule
// sets; the second one is refused at start with the holder named.
#pragma once

#include <string>

namespace xdpfw {

class AgentLock {
 public:
  // Locks pin_dir (a folder on bpffs; "" for none) and state_dir ("none"
  // for none; created 0700 where missing) with flock. Throws
  // std::runtime_error naming the folder and the pid that holds it.
  AgentLock(const std::string& pin_dir, const std::string& state_dir);
  ~AgentLock();
  AgentLock(const AgentLock&) = delete;
  AgentLock& operator=(const AgentLock&) = delete;

 private:
  int pin_fd_ = -1;
  int state_fd_ = -1;
};

}  // namespace xdpfw
