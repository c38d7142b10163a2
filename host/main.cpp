// main.cpp: xdpfw-host's entry point.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>

#include "host.hpp"
#include "log.hpp"

using namespace xdpfw::host;

int main(int argc, char** argv) {
  CommandLine cli;
  HostConfig cfg;
  try {
    cli = parse_command_line(argc, argv);
    if (cli.action == CommandLine::Action::help) {
      std::fputs(cli.help_text.c_str(), stdout);
      return 0;
    }
    if (cli.action == CommandLine::Action::version) {
      std::printf("xdpfw-host %s (plugin ABI %d.%d)\n", version, XDPFW_PLUGIN_ABI_MAJOR,
                  XDPFW_PLUGIN_ABI_MINOR);
      return 0;
    }
    cfg = load_config(cli);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "xdpfw-host: %s\n", e.what());
    // --check-config answers 0 or 1 for the file; 2 is a bad command line.
    return cli.action == CommandLine::Action::check_config ? 1 : 2;
  }
  set_log_level(cfg.log_level);
  if (cli.action == CommandLine::Action::check_config) return Host::check_config(cfg);
  std::signal(SIGPIPE, SIG_IGN);  // a client that goes away is an error code, not a death
  // One descriptor per control client (max-clients, 1024 by default) on top
  // of the maps, links and perf rings: the soft limit (often 1024) would
  // refuse clients long before max-clients. Raise it to the hard limit.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  Host host(std::move(cli), std::move(cfg));
  return host.run();
}
