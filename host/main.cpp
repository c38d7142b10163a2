// main.cpp: xdpfw-host's entry point.
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
    return 2;
  }
  set_log_level(cfg.log_level);
  if (cli.action == CommandLine::Action::check_config) return Host::check_config(cfg);
  std::signal(SIGPIPE, SIG_IGN);  // a client that goes away is an error code, not a death
  Host host(std::move(cli), std::move(cfg));
  return host.run();
}
