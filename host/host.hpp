// host.hpp: the xdpfw-host process: one io_context, signals, the control
// server, the command registry and the loaded plugins with the services the
// host gives them (xdpfw_plugin.h). It knows nothing about firewalls.
#pragma once

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <boost/asio.hpp>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "command_registry.hpp"
#include "control_server.hpp"
#include "host_config.hpp"
#include "link_monitor.hpp"
#include "metrics_server.hpp"
#include "plugin_loader.hpp"
#include "xdpfw_plugin.h"

struct xdpfw_host;

namespace xdpfw::host {

inline constexpr const char* version = "0.1.0";

class Host {
 public:
  Host(CommandLine cli, HostConfig cfg);
  ~Host();

  // Creates the socket, loads the plugins, serves until SIGTERM/SIGINT.
  // Returns the process exit code.
  int run();
  // --check-config: loads each plugin library and has it check its section.
  static int check_config(const HostConfig& cfg);

  // Link events from the netlink monitor, to every subscribed plugin.
  void publish_link_event(const netlink::LinkEvent& ev);

  // Services of xdpfw_host_api (called through the C trampolines).
  struct Plugin;
  void log_from(Plugin& p, xdpfw_log_level level, const char* msg);
  uint64_t watch_fd(Plugin& p, int fd, xdpfw_fd_fn fn, void* ctx);
  void unwatch_fd(uint64_t id);
  uint64_t add_timer(Plugin& p, uint64_t ms, bool periodic, xdpfw_timer_fn fn, void* ctx);
  void cancel_timer(uint64_t id);
  uint64_t add_command(Plugin& p, const char* name, const char* usage, uint32_t flags,
                       xdpfw_command_fn fn, void* ctx);
  uint64_t subscribe_links(Plugin& p, xdpfw_link_fn fn, void* ctx);
  uint64_t new_stream() { return next_id_++; }
  int stream_write(uint64_t id, const char* data, size_t len);
  void stream_close(uint64_t id);

 private:
  struct FdWatch;
  struct Timer;
  struct LinkSub {
    uint64_t owner;
    xdpfw_link_fn fn;
    void* ctx;
    bool live = false;  // false until the current links were replayed to it
  };

  void load_plugins();
  void unload_plugins();
  void add_builtin_commands();
  CommandResult cmd_help(std::string_view args, const std::string* payload);
  CommandResult cmd_version(std::string_view args, const std::string* payload);
  CommandResult cmd_show_plugins(std::string_view args, const std::string* payload);
  CommandResult cmd_reload(std::string_view args, const std::string* payload);
  CommandResult cmd_show_reload(std::string_view args, const std::string* payload);
  CommandResult cmd_quit(std::string_view args, const std::string* payload);
  void wait_signals();
  struct ReloadResult {
    bool ok = false;
    std::string text;  // what was applied, or why nothing was
  };
  // force: re-apply the plugins' files even where unchanged ("reload").
  ReloadResult reload(bool force);
  // State-changing commands, and refusals of them, to the log and streams.
  void audit(const Request& r, const ClientInfo& c, bool ok, const std::string& result);
  void stop();
  Reply dispatch(const Request& r, const ClientInfo& c);
  // GET /metrics: every "show metrics" command's text, then the host's own.
  Scrape collect_metrics();
  void arm(const std::shared_ptr<FdWatch>& w);
  void arm(const std::shared_ptr<Timer>& t);
  // Keeps a new watch or timer under its id and arms it; returns the id.
  template <typename T>
  uint64_t start(std::map<uint64_t, std::shared_ptr<T>>& all, std::shared_ptr<T> x) {
    all[x->id] = x;
    arm(x);
    return x->id;
  }

  CommandLine cli_;
  HostConfig cfg_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  ControlServer server_;
  CommandRegistry commands_;
  MetricsServer metrics_;
  std::unique_ptr<netlink::LinkMonitor> links_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
  std::map<uint64_t, std::shared_ptr<FdWatch>> watches_;
  std::map<uint64_t, std::shared_ptr<Timer>> timers_;
  std::map<uint64_t, LinkSub> link_subs_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  uint64_t reloads_applied_ = 0, reloads_refused_ = 0;
  struct {
    std::time_t started = std::time(nullptr), at = 0, in_effect_since = 0;
    bool ok = true;
    std::string text;
  } last_reload_;
};

}  // namespace xdpfw::host
