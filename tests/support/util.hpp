// util.hpp: small helpers of the tests and benchmarks: a private temporary
// folder, a private bpf filesystem, files, shell commands, waiting for a
// condition without timing assertions, what /proc says about a process.
// No Boost.Test here: failures are std::runtime_error (Boost.Test reports an
// uncaught one as a failure).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

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

// How big the randomised, differential and stress checks are: full in the
// normal build, CI size under the sanitizers, where each check costs several
// times more and scripts/test.sh runs them a second time (every case still
// runs; fewer seeds, steps or headers). XDPFW_TEST_SIZE=full or ci chooses
// (scripts/test.sh --deep runs both builds at full size).
bool ci_size();
template <class T>
T sized(T full, T ci) {
  return ci_size() ? ci : full;
}

std::string read_file(const fs::path& p);
void write_file(const fs::path& p, const std::string& text);

// A folder of its own (unique name), readable by all so that tests can
// connect as another user, removed at the end.
struct TempDir {
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path operator/(const std::string& s) const { return path / s; }
  fs::path path;
};

// A private bpf filesystem, unmounted (and so every pin in it released) at
// the end. An agent's is mounted before it starts: ip netns exec gives the
// agent a mount namespace copied at that moment.
struct BpfMount {
  explicit BpfMount(const fs::path& p);
  ~BpfMount();
  BpfMount(const BpfMount&) = delete;
  BpfMount& operator=(const BpfMount&) = delete;
  fs::path path;
};

// Output of a shell command (stdout; stderr too with 2>&1 in cmd).
std::string shell(const std::string& cmd, int* status = nullptr);
// Runs CMD (stderr with stdout); it must succeed, else std::runtime_error
// "CMD: output".
std::string must(const std::string& cmd);
// S as one single-quoted shell word.
std::string quote(const std::string& s);

// Polls COND every 20 ms for up to SECONDS; its last answer.
bool wait_until(const std::function<bool()>& cond, int seconds = 20);

// CPU time a process used so far, in clock ticks (user + system): a
// resource measure (a spinning loop uses every tick), not a timing.
long cpu_ticks(pid_t pid);
// A /proc/PID/status value in kB ("VmHWM:", "VmRSS:"); 0 when absent.
long proc_status_kib(pid_t pid, const std::string& key);
// Kernel memory of the BPF maps a process holds, in bytes (memlock in its
// fdinfo, each map once).
uint64_t bpf_map_bytes(pid_t pid);

}  // namespace xdpfw::test
