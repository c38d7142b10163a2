// agent_lock.cpp: see agent_lock.hpp.
#include "agent_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "safe_files.hpp"

namespace xdpfw {
namespace {

// The pid holding a flock on the file behind fd, from /proc/locks ("" when
// not found): lines "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF".
std::string holder(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return "";
  std::ifstream in("/proc/locks");
  std::string line;
  std::string inode = ":" + std::to_string(st.st_ino);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string n, kind, adv, mode, pid, dev;
    if (!(f >> n >> kind >> adv >> mode >> pid >> dev)) continue;
    if (kind == "FLOCK" && dev.size() > inode.size() &&
        dev.compare(dev.size() - inode.size(), inode.size(), inode) == 0)
      return pid;
  }
  return "";
}

int lock(const std::string& path, int flags, const char* what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    throw std::runtime_error(std::string(what) + " " + path + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    std::string pid = e == EWOULDBLOCK ? holder(fd) : "";
    ::close(fd);
    if (e == EWOULDBLOCK)
      throw std::runtime_error(std::string(what) + " " + path + " is in use by another agent" +
                               (pid.empty() ? "" : " (pid " + pid + ")") +
                               ": stop it, or give this agent its own pin-root and state-dir");
    throw std::runtime_error(std::string("cannot lock ") + what + " " + path + ": " +
                             std::strerror(e));
  }
  return fd;
}

}  // namespace

AgentLock::AgentLock(const std::string& pin_dir, const std::string& state_dir) {
  if (!pin_dir.empty()) pin_fd_ = lock(pin_dir, O_RDONLY | O_DIRECTORY, "pin folder");
  if (!state_dir.empty() && state_dir != "none") {
    try {
      make_private_dir(state_dir, 0700, "state-dir");
      state_fd_ = lock(state_dir + "/agent.lock", O_RDWR | O_CREAT, "state-dir");
    } catch (...) {
      if (pin_fd_ >= 0) ::close(pin_fd_);
      throw;
    }
  }
}

AgentLock::~AgentLock() {
  if (state_fd_ >= 0) ::close(state_fd_);
  if (pin_fd_ >= 0) ::close(pin_fd_);
}

}  // namespace xdpfw
