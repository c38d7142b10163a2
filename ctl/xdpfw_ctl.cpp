// xdpfw-ctl: the `manager` CLI of the seed XDP firewall this project grew
// from (bench/baselines/seed.bpf.c), as a client of the agent's control
// socket. Its verbs are one table (verbs.cpp): name, options, words, usage,
// what completes each word, what it sends. The usage text, the checks, the
// dispatch and the bash completion (`xdpfw-ctl __complete`, which
// packaging/xdpfw-ctl.bash-completion calls) all read it.
// Options go anywhere on the line (before or after the command and its
// words); "--" ends them. A word or option a command does not take is bad
// usage. Socket: --socket PATH, else $XDPFW_SOCKET, else /run/xdpfw/xdpfw.sock.
// Exit: 0 ok; 1 the agent answered an error (printed on stderr); 2 bad usage;
// 3 no agent reachable, or the agent went away before its answer was complete
// (for monitor: the event stream ended without Ctrl-C); 4 (status) the
// agent reports a refused rules change or an interface in error.
#include <cstdio>
#include <string>
#include <vector>

#include "client.hpp"
#include "verbs.hpp"

#ifndef XDPFW_VERSION
#error "XDPFW_VERSION must be defined (ctl/CMakeLists.txt passes the project's version)"
#endif

using namespace xdpfw::ctl;

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "__complete") return print_completion(args);
  try {
    Call l = parse_line(args);
    if (l.has("help")) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    if (l.has("version")) {
      std::printf("xdpfw-ctl %s\n", XDPFW_VERSION);
      return 0;
    }
    if (l.words.empty()) {
      std::fputs(usage().c_str(), stderr);
      return 2;
    }
    const Verb& v = check_line(l);
    if (v.run) return v.run(l);
    return request(l.sock, {v.sends + l.json()});
  } catch (const UsageError& e) {
    std::fprintf(stderr, "xdpfw-ctl: %s\n%s", e.what(), usage().c_str());
    return 2;
  }
}
