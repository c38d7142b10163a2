// test_util.hpp: small helpers of the tests: a private temporary folder,
// files, shell commands, waiting for a condition without timing assertions.
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

namespace xdpfw::test {

namespace fs = std::filesystem;

// Built with AddressSanitizer (the sanitizer stage): memory figures are
// ASan's (its quarantine keeps freed memory) and its runtime needs
// descriptors of its own, so a few resource checks run in the normal build.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XDPFW_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(XDPFW_TEST_SANITIZED)
#define XDPFW_TEST_SANITIZED 1
#endif
#ifdef XDPFW_TEST_SANITIZED
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

// A folder of its own (unique name), readable by all so that tests can
// connect as another user, removed at the end.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/xdpfw-test-XXXXXX";
    BOOST_TEST_REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
    chmod(tmpl, 0755);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& s) const { return path / s; }
  fs::path path;
};

// Output of a shell command (stdout; stderr too with 2>&1 in cmd).
inline std::string shell(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  BOOST_TEST_REQUIRE(f != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int st = pclose(f);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline bool wait_until(const std::function<bool()>& cond, int seconds = 20) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// CPU time a process used so far, in clock ticks (user + system): a
// resource measure (a spinning loop uses every tick), not a timing.
inline long cpu_ticks(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i)
    if (i >= 14) ticks += std::stol(field);
  return ticks;
}

// A /proc/PID/status value in kB ("VmHWM:", "VmRSS:"); 0 when absent.
inline long proc_status_kib(pid_t pid, const std::string& key) {
  std::string st = read_file("/proc/" + std::to_string(pid) + "/status");
  size_t at = st.find(key);
  return at == std::string::npos ? 0L : std::stol(st.substr(at + key.size()));
}

}  // namespace xdpfw::test
