#include "support/util.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace xdpfw::test {

bool ci_size() {
  static const bool ci = [] {
    const char* v = std::getenv("XDPFW_TEST_SIZE");
    if (v && std::strcmp(v, "full") == 0) return false;
    if (v && std::strcmp(v, "ci") == 0) return true;
    if (v && *v) throw std::runtime_error(std::string("XDPFW_TEST_SIZE=") + v + ": full or ci");
    return sanitized_build;
  }();
  return ci;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/xdpfw-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp /tmp/xdpfw-test-XXXXXX failed");
  path = tmpl;
  chmod(tmpl, 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

BpfMount::BpfMount(const fs::path& p) : path(p) {
  fs::create_directories(path);
  if (mount("bpf", path.c_str(), "bpf", 0, nullptr) != 0)
    throw std::runtime_error("mount bpffs on " + path.string() + ": " + std::strerror(errno));
}

BpfMount::~BpfMount() {
  umount2(path.c_str(), MNT_DETACH);
}

std::string shell(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("popen: " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int st = pclose(f);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

std::string must(const std::string& cmd) {
  int st = 0;
  std::string out = shell(cmd + " 2>&1", &st);
  if (st != 0) throw std::runtime_error(cmd + ": " + out);
  return out;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool wait_until(const std::function<bool()>& cond, int seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

long cpu_ticks(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i)
    if (i >= 14) ticks += std::stol(field);
  return ticks;
}

long proc_status_kib(pid_t pid, const std::string& key) {
  std::string st = read_file("/proc/" + std::to_string(pid) + "/status");
  size_t at = st.find(key);
  return at == std::string::npos ? 0L : std::stol(st.substr(at + key.size()));
}

uint64_t bpf_map_bytes(pid_t pid) {
  uint64_t total = 0;
  std::set<std::string> seen;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo")) {
    std::ifstream in(e.path());
    std::string line, id;
    uint64_t memlock = 0;
    while (std::getline(in, line)) {
      if (line.rfind("map_id:", 0) == 0) id = line;
      if (line.rfind("memlock:", 0) == 0) memlock = std::stoull(line.substr(8));
    }
    if (!id.empty() && seen.insert(id).second) total += memlock;
  }
  return total;
}

}  // namespace xdpfw::test
