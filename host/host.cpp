// host.cpp: the host process and the plugin services behind xdpfw_host_api.
#include "host.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <sstream>

#include "libnl_link_monitor.hpp"
#include "log.hpp"
#include "sd_notify.hpp"
#include "text.hpp"
#include "utc_time.hpp"

namespace asio = boost::asio;

// The C ABI's opaque handle: which host, which plugin.
struct xdpfw_host {
  xdpfw::host::Host* host;
  xdpfw::host::Host::Plugin* plugin;
};

struct xdpfw_reply {
  xdpfw::host::Host* host = nullptr;
  std::string text;
  uint64_t stream = 0;
};

namespace xdpfw::host {

struct Host::Plugin {
  uint64_t id = 0;
  std::unique_ptr<PluginLibrary> lib;
  xdpfw_host handle{};
  xdpfw_host_api api{};
  void* state = nullptr;
  std::string name() const { return lib->plugin().name; }
};

struct Host::FdWatch {
  uint64_t id, owner;
  asio::posix::stream_descriptor sd;
  xdpfw_fd_fn fn;
  void* ctx;
  bool active = true;
};

struct Host::Timer {
  uint64_t id, owner;
  asio::steady_timer timer;
  std::chrono::milliseconds period;
  bool periodic;
  xdpfw_timer_fn fn;
  void* ctx;
  bool active = true;
};

namespace {

// One config section in the ABI's terms; owns nothing.
struct SectionView {
  std::vector<xdpfw_config_entry> entries;
  xdpfw_config_section section{};
  SectionView(const HostConfig& cfg, const std::string& plugin) {
    auto it = cfg.plugin_sections.find(plugin);
    if (it != cfg.plugin_sections.end())
      for (const IniEntry& e : it->second.entries)
        entries.push_back({e.key.c_str(), e.value.c_str(), e.line});
    section.file = cfg.config_file.c_str();
    section.count = entries.size();
    section.entries = entries.data();
  }
};

// The C trampolines of xdpfw_host_api: no exception crosses into a plugin.
template <typename F>
auto guarded(const char* what, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    log_error(std::string("plugin service ") + what + ": " + e.what());
  }
  return decltype(f())();
}

void api_log(xdpfw_host* h, xdpfw_log_level level, const char* msg) {
  guarded("log", [&] { h->host->log_from(*h->plugin, level, msg ? msg : ""); });
}
uint64_t api_watch_fd(xdpfw_host* h, int fd, xdpfw_fd_fn fn, void* ctx) {
  return guarded("watch_fd", [&] { return h->host->watch_fd(*h->plugin, fd, fn, ctx); });
}
void api_unwatch_fd(xdpfw_host* h, uint64_t id) {
  guarded("unwatch_fd", [&] { h->host->unwatch_fd(id); });
}
uint64_t api_add_timer(xdpfw_host* h, uint64_t ms, int periodic, xdpfw_timer_fn fn, void* ctx) {
  return guarded("add_timer",
                 [&] { return h->host->add_timer(*h->plugin, ms, periodic != 0, fn, ctx); });
}
void api_cancel_timer(xdpfw_host* h, uint64_t id) {
  guarded("cancel_timer", [&] { h->host->cancel_timer(id); });
}
uint64_t api_add_command(xdpfw_host* h, const char* name, const char* usage, uint32_t flags,
                         xdpfw_command_fn fn, void* ctx) {
  return guarded("add_command",
                 [&] { return h->host->add_command(*h->plugin, name, usage, flags, fn, ctx); });
}
void api_reply_write(xdpfw_reply* r, const char* data, size_t len) {
  guarded("reply_write", [&] {
    if (r && data) r->text.append(data, len);
  });
}
uint64_t api_reply_stream(xdpfw_reply* r) {
  return guarded("reply_stream", [&]() -> uint64_t {
    if (!r || !r->host) return 0;
    if (!r->stream) r->stream = r->host->new_stream();
    return r->stream;
  });
}
int api_stream_write(xdpfw_host* h, uint64_t id, const char* data, size_t len) {
  return guarded("stream_write", [&] { return h->host->stream_write(id, data, len); });
}
void api_stream_close(xdpfw_host* h, uint64_t id) {
  guarded("stream_close", [&] { h->host->stream_close(id); });
}
uint64_t api_subscribe_links(xdpfw_host* h, xdpfw_link_fn fn, void* ctx) {
  return guarded("subscribe_links", [&] { return h->host->subscribe_links(*h->plugin, fn, ctx); });
}

// Replies end with one empty line, so a reply's own text never holds one.
std::string frame(std::string text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (char c : text) {
    if (c == '\n' && (out.empty() || out.back() == '\n')) continue;
    out.push_back(c);
  }
  if (!out.empty() && out.back() != '\n') out.push_back('\n');
  out.push_back('\n');
  return out;
}

Reply error_reply(const std::string& msg) {
  return Reply{frame("ERR: " + msg), false};
}

std::string json_escape(std::string_view s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += static_cast<char>(c);
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else
      o += static_cast<char>(c);
  }
  return o;
}

}  // namespace

Host::Host(CommandLine cli, HostConfig cfg)
    : cli_(std::move(cli)),
      cfg_(std::move(cfg)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      server_(io_, [this](const Request& r, const ClientInfo& c) { return dispatch(r, c); }),
      metrics_(io_, [this] { return collect_metrics(); }) {
  signals_.add(SIGUSR1);
  add_builtin_commands();
}

Host::~Host() {
  metrics_.stop();
  unload_plugins();
  server_.stop();
}

void Host::log_from(Plugin& p, xdpfw_log_level level, const char* msg) {
  int l = std::clamp(static_cast<int>(level), 0, 3);
  log(static_cast<LogLevel>(l), p.name() + ": " + msg);
}

void Host::arm(const std::shared_ptr<FdWatch>& w) {
  w->sd.async_wait(asio::posix::stream_descriptor::wait_read,
                   [this, w](boost::system::error_code ec) {
                     if (ec || !w->active) return;
                     w->fn(w->ctx, w->sd.native_handle());
                     if (w->active) arm(w);
                   });
}

uint64_t Host::watch_fd(Plugin& p, int fd, xdpfw_fd_fn fn, void* ctx) {
  if (fd < 0 || !fn) return 0;
  return start(watches_, std::make_shared<FdWatch>(FdWatch{
                             next_id_++, p.id, asio::posix::stream_descriptor(io_, fd), fn, ctx}));
}

void Host::unwatch_fd(uint64_t id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  auto w = it->second;
  watches_.erase(it);
  w->active = false;
  boost::system::error_code ec;
  w->sd.cancel(ec);
  w->sd.release();  // the fd stays the plugin's
}

void Host::arm(const std::shared_ptr<Timer>& t) {
  t->timer.expires_after(t->period);
  t->timer.async_wait([this, t](boost::system::error_code ec) {
    if (ec || !t->active) return;
    if (!t->periodic) {
      t->active = false;
      timers_.erase(t->id);
    }
    t->fn(t->ctx);
    if (t->periodic && t->active) arm(t);
  });
}

uint64_t Host::add_timer(Plugin& p, uint64_t ms, bool periodic, xdpfw_timer_fn fn, void* ctx) {
  if (!fn || (periodic && ms == 0)) return 0;
  return start(timers_,
               std::make_shared<Timer>(Timer{next_id_++, p.id, asio::steady_timer(io_),
                                             std::chrono::milliseconds(ms), periodic, fn, ctx}));
}

void Host::cancel_timer(uint64_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  it->second->active = false;
  it->second->timer.cancel();
  timers_.erase(it);
}

uint64_t Host::add_command(Plugin& p, const char* name, const char* usage, uint32_t flags,
                           xdpfw_command_fn fn, void* ctx) {
  if (!name || !fn) return 0;
  try {
    return commands_.add(
        p.id, name, usage ? usage : "", (flags & XDPFW_CMD_MUTATES) != 0,
        [this, fn, ctx](std::string_view args, const std::string* payload) {
          xdpfw_reply reply;
          reply.host = this;
          std::string a(args);
          int rc = fn(ctx, a.c_str(), payload ? payload->c_str() : nullptr,
                      payload ? payload->size() : 0, &reply);
          return CommandResult{rc == 0, std::move(reply.text), rc == 0 ? reply.stream : 0};
        });
  } catch (const std::invalid_argument& e) {
    log_error(p.name() + ": add_command: " + e.what());
    return 0;
  }
}

namespace {
xdpfw_link_event to_abi(const netlink::LinkEvent& ev) {
  xdpfw_link_event e{};
  e.size = sizeof e;
  e.type = ev.type == netlink::LinkEvent::Type::added     ? XDPFW_LINK_ADDED
           : ev.type == netlink::LinkEvent::Type::removed ? XDPFW_LINK_REMOVED
                                                          : XDPFW_LINK_CHANGED;
  e.ifindex = ev.link.ifindex;
  e.name = ev.link.name.c_str();
  e.old_name = ev.old_name ? ev.old_name->c_str() : nullptr;
  e.kind = ev.link.kind.c_str();
  e.up = ev.link.up;
  e.running = ev.link.running;
  return e;
}
}  // namespace

uint64_t Host::subscribe_links(Plugin& p, xdpfw_link_fn fn, void* ctx) {
  if (!fn) return 0;
  uint64_t id = next_id_++;
  link_subs_[id] = LinkSub{p.id, fn, ctx};
  // From the loop, not inside init: the links known then, as "added"; live
  // events only after that, so the subscriber's view is never out of order.
  asio::post(io_, [this, id] {
    auto it = link_subs_.find(id);
    if (it == link_subs_.end()) return;
    it->second.live = true;
    LinkSub s = it->second;
    if (!links_) return;
    auto snapshot = links_->links();
    for (const auto& [idx, l] : snapshot) {
      if (!link_subs_.count(id)) return;
      netlink::LinkEvent ev{netlink::LinkEvent::Type::added, l, std::nullopt};
      xdpfw_link_event e = to_abi(ev);
      s.fn(s.ctx, &e);
    }
  });
  return id;
}

int Host::stream_write(uint64_t id, const char* data, size_t len) {
  if (!data) return -1;
  return server_.stream_write(id, std::string(data, len));
}

void Host::stream_close(uint64_t id) {
  server_.stream_close(id);
}

void Host::publish_link_event(const netlink::LinkEvent& ev) {
  log_debug("link " + std::to_string(ev.link.ifindex) + " " + ev.link.name +
            (ev.type == netlink::LinkEvent::Type::added     ? " added"
             : ev.type == netlink::LinkEvent::Type::removed ? " removed"
                                                            : " changed"));
  xdpfw_link_event e = to_abi(ev);
  auto subs = link_subs_;  // a handler may unsubscribe
  for (const auto& [id, s] : subs)
    if (s.live && link_subs_.count(id)) s.fn(s.ctx, &e);
}

void Host::load_plugins() {
  for (const std::string& path : cfg_.plugins) {
    auto p = std::make_unique<Plugin>();
    p->id = next_id_++;
    p->lib = std::make_unique<PluginLibrary>(path);
    for (const auto& other : plugins_)
      if (other->name() == p->name())
        throw PluginError("plugin " + path + ": a plugin named '" + p->name() +
                          "' is already loaded from " + other->lib->path());
    p->handle = xdpfw_host{this, p.get()};
    p->api = xdpfw_host_api{sizeof(xdpfw_host_api),
                            XDPFW_PLUGIN_ABI_MAJOR,
                            XDPFW_PLUGIN_ABI_MINOR,
                            &p->handle,
                            api_log,
                            api_watch_fd,
                            api_unwatch_fd,
                            api_add_timer,
                            api_cancel_timer,
                            api_add_command,
                            api_reply_write,
                            api_subscribe_links,
                            api_reply_stream,
                            api_stream_write,
                            api_stream_close};
    SectionView section(cfg_, p->name());
    char err[512] = "";
    Plugin* raw = p.get();
    plugins_.push_back(std::move(p));  // registrations made by init find it
    if (raw->lib->plugin().init(&raw->api, &section.section, &raw->state, err, sizeof err) != 0) {
      std::string msg = "plugin " + path + ": init failed: " + (*err ? err : "no reason given");
      uint64_t id = raw->id;
      plugins_.pop_back();
      commands_.remove_owner(id);
      throw PluginError(msg);
    }
    log_info("loaded plugin " + raw->name() + " " + raw->lib->plugin().version + " from " + path);
  }
  for (const auto& [name, s] : cfg_.plugin_sections) {
    bool used = false;
    for (const auto& p : plugins_) used |= p->name() == name;
    if (!used)
      log_warn(cfg_.config_file + ":" + std::to_string(s.line) + ": section [plugin." + name +
               "] belongs to no loaded plugin");
  }
}

void Host::unload_plugins() {
  while (!plugins_.empty()) {
    Plugin& p = *plugins_.back();
    p.lib->plugin().fini(p.state);
    // Everything it registered goes with it, before its code is unmapped.
    commands_.remove_owner(p.id);
    for (auto it = watches_.begin(); it != watches_.end();) {
      auto next = std::next(it);
      if (it->second->owner == p.id) unwatch_fd(it->first);
      it = next;
    }
    for (auto it = timers_.begin(); it != timers_.end();) {
      auto next = std::next(it);
      if (it->second->owner == p.id) cancel_timer(it->first);
      it = next;
    }
    std::erase_if(link_subs_, [&](const auto& kv) { return kv.second.owner == p.id; });
    log_info("unloaded plugin " + p.name());
    plugins_.pop_back();  // dlclose
  }
}

// The host's own commands, as a table: name, usage, whether it changes
// state, and the member that answers it.
namespace {
struct Builtin {
  const char* name;
  const char* usage;
  bool mutates;
  CommandResult (Host::*fn)(std::string_view args, const std::string* payload);
};
}  // namespace

void Host::add_builtin_commands() {
  static const Builtin table[] = {
      {"help", "list the commands", false, &Host::cmd_help},
      {"version", "the host's version and plugin ABI", false, &Host::cmd_version},
      {"show plugins", "[json]: the loaded plugins", false, &Host::cmd_show_plugins},
      {"reload",
       "re-read the config file and what it names (the rules file, even unchanged); applied "
       "whole or refused whole",
       true, &Host::cmd_reload},
      {"show reload", "[json]: the config in effect and the last reload's outcome", false,
       &Host::cmd_show_reload},
      {"quit", "close this connection", false, &Host::cmd_quit},
  };
  for (const Builtin& b : table)
    commands_.add(0, b.name, b.usage, b.mutates,
                  [this, fn = b.fn](std::string_view args, const std::string* payload) {
                    return (this->*fn)(args, payload);
                  });
}

CommandResult Host::cmd_help(std::string_view, const std::string*) {
  std::ostringstream o;
  for (const Command& c : commands_.all()) {
    std::string n = c.name();
    o << n << std::string(n.size() < 24 ? 24 - n.size() : 1, ' ') << c.usage
      << (c.mutates ? " [changes state]" : "") << "\n";
  }
  return CommandResult{true, o.str()};
}

CommandResult Host::cmd_version(std::string_view, const std::string*) {
  return CommandResult{true, std::string("xdpfw-host ") + version + " (plugin ABI " +
                                 std::to_string(XDPFW_PLUGIN_ABI_MAJOR) + "." +
                                 std::to_string(XDPFW_PLUGIN_ABI_MINOR) + ")"};
}

CommandResult Host::cmd_show_plugins(std::string_view args, const std::string*) {
  bool json = args == "json";
  if (!json && !args.empty())
    return CommandResult{
        false, "show plugins: unexpected '" + std::string(args) + "' (expected nothing or 'json')"};
  std::ostringstream o;
  if (json) o << "[";
  for (size_t i = 0; i < plugins_.size(); ++i) {
    const auto& p = *plugins_[i];
    const auto& d = p.lib->plugin();
    if (json)
      o << (i ? "," : "") << "{\"name\":\"" << json_escape(d.name) << "\",\"version\":\""
        << json_escape(d.version ? d.version : "") << "\",\"abi\":\"" << d.abi_major << "."
        << d.abi_minor << "\",\"path\":\"" << json_escape(p.lib->path()) << "\"}";
    else
      o << d.name << " " << (d.version ? d.version : "") << " abi " << d.abi_major << "."
        << d.abi_minor << " " << p.lib->path() << "\n";
  }
  if (json) o << "]";
  return CommandResult{true, o.str()};
}

CommandResult Host::cmd_reload(std::string_view args, const std::string*) {
  if (!args.empty()) return CommandResult{false, "reload: takes no argument"};
  ReloadResult r = reload(true);
  return CommandResult{r.ok, r.text};
}

CommandResult Host::cmd_show_reload(std::string_view args, const std::string*) {
  bool json = args == "json";
  if (!json && !args.empty())
    return CommandResult{
        false, "show reload: unexpected '" + std::string(args) + "' (expected nothing or 'json')"};
  auto when = [](std::time_t t) { return t ? utc_time(t) : std::string("never"); };
  const auto& l = last_reload_;
  std::string outcome = !l.at ? "none" : l.ok ? "applied" : "refused";
  std::ostringstream o;
  if (json)
    o << "{\"config\":\"" << json_escape(cfg_.config_file) << "\",\"started\":\"" << when(l.started)
      << "\",\"in_effect_since\":\"" << when(l.in_effect_since) << "\",\"last_reload\":\""
      << when(l.at) << "\",\"outcome\":\"" << outcome << "\",\"message\":\"" << json_escape(l.text)
      << "\"}";
  else
    o << "config " << (cfg_.config_file.empty() ? "-" : cfg_.config_file) << "\nstarted "
      << when(l.started) << "\nin effect since " << when(l.in_effect_since) << "\nlast reload "
      << when(l.at) << (l.at ? " " + outcome : std::string()) << "\n"
      << l.text;
  return CommandResult{true, o.str()};
}

// "quit" ends the connection after its (empty) answer.
CommandResult Host::cmd_quit(std::string_view, const std::string*) {
  CommandResult r;
  r.close = true;
  return r;
}

Reply Host::dispatch(const Request& r, const ClientInfo& c) {
  auto found = commands_.find(r.line);
  if (!found) {
    auto words = split_words(r.line);
    std::string first = words.empty() ? r.line : std::string(words[0]);
    for (char& ch : first)
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '?';
    if (first.size() > 64) first = first.substr(0, 64) + "...";
    return error_reply("unknown command '" + first + "'; 'help' lists the commands");
  }
  auto [cmd, args] = *found;
  if (cmd->mutates && !c.admin) {
    std::string msg = "permission denied: '" + cmd->name() +
                      "' changes state; it needs root or the control socket's group";
    audit(r, c, false, msg);
    return error_reply(msg);
  }
  log_debug("control: pid " + std::to_string(c.pid) + ": " + cmd->name());
  CommandResult res;
  try {
    res = cmd->fn(args, r.payload ? &*r.payload : nullptr);
  } catch (const std::exception& e) {
    res = CommandResult{false, std::string("internal error: ") + e.what()};
  }
  if (cmd->mutates) audit(r, c, res.ok, res.text.empty() && !res.ok ? "command failed" : res.text);
  if (!res.ok) return error_reply(res.text.empty() ? "command failed" : res.text);
  if (res.close) return Reply{"\n", true};
  if (res.stream) return Reply{std::move(res.text), false, res.stream};  // lines follow, unframed
  return Reply{frame(std::move(res.text)), false};
}

// Every registered "show metrics" command (the plugins'), as a client would
// run it, then the host's own series. A failing command fails the scrape
// (500): a partial scrape would look like counters that went back.
Scrape Host::collect_metrics() {
  std::vector<CommandFn> fns;
  for (const Command& c : commands_.all())
    if (c.name() == "show metrics") fns.push_back(c.fn);
  Scrape s;
  for (const CommandFn& fn : fns) {
    CommandResult r = fn("", nullptr);
    if (!r.ok) return Scrape{false, "show metrics: " + r.text};
    s.text += r.text;
    if (!s.text.empty() && s.text.back() != '\n') s.text += '\n';
  }
  std::ostringstream o;
  o << "# HELP xdpfw_host_info The agent's version and plugin ABI; always 1.\n"
       "# TYPE xdpfw_host_info gauge\n"
       "xdpfw_host_info{version=\""
    << version << "\",abi=\"" << XDPFW_PLUGIN_ABI_MAJOR << "." << XDPFW_PLUGIN_ABI_MINOR
    << "\"} 1\n"
       "# HELP xdpfw_host_start_time_seconds When the agent started, in seconds since the epoch.\n"
       "# TYPE xdpfw_host_start_time_seconds gauge\n"
       "xdpfw_host_start_time_seconds "
    << last_reload_.started
    << "\n# HELP xdpfw_host_plugins Plugins loaded.\n# TYPE xdpfw_host_plugins gauge\n"
       "xdpfw_host_plugins "
    << plugins_.size()
    << "\n# HELP xdpfw_host_reloads_total Reloads (SIGHUP, the reload command) by outcome.\n"
       "# TYPE xdpfw_host_reloads_total counter\n"
       "xdpfw_host_reloads_total{outcome=\"applied\"} "
    << reloads_applied_ << "\nxdpfw_host_reloads_total{outcome=\"refused\"} " << reloads_refused_
    << "\n";
  ControlServer::Counts c = server_.counts();
  o << "# HELP xdpfw_host_control_clients Control socket clients by level.\n"
       "# TYPE xdpfw_host_control_clients gauge\n"
       "xdpfw_host_control_clients{level=\"admin\"} "
    << c.admins << "\nxdpfw_host_control_clients{level=\"read_only\"} " << c.read_only
    << "\n# HELP xdpfw_host_control_watchers Control clients turned into live streams.\n"
       "# TYPE xdpfw_host_control_watchers gauge\n"
       "xdpfw_host_control_watchers "
    << c.watchers
    << "\n# HELP xdpfw_host_control_held_bytes Unread replies and unrun input of all clients "
       "(max-memory bounds it).\n"
       "# TYPE xdpfw_host_control_held_bytes gauge\n"
       "xdpfw_host_control_held_bytes "
    << c.held_bytes << "\n"
    << metrics_.own_metrics();
  s.text += o.str();
  return s;
}

// "audit: uid 0 pid 4242: rule add proto tcp dport 22 action drop: ok: id 7"
// in the log, and as a JSON line to every live stream ("show events").
void Host::audit(const Request& r, const ClientInfo& c, bool ok, const std::string& result) {
  auto printable = [](std::string s, size_t max) {
    for (char& ch : s)
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f)
        ch = ch == '\n' ? ';' : '?';
    if (s.size() > max) s = s.substr(0, max) + "...";
    return s;
  };
  std::string command = printable(r.line, 512);
  if (r.payload)
    command += " <<payload (" +
               std::to_string(std::count(r.payload->begin(), r.payload->end(), '\n')) + " lines, " +
               std::to_string(r.payload->size()) + " bytes)";
  std::string outcome = printable(result, 300);
  std::string uid = c.uid == static_cast<uid_t>(-1) ? "?" : std::to_string(c.uid);
  log_info("audit: uid " + uid + " pid " + std::to_string(c.pid) + ": " + command + ": " +
           (ok ? "ok" : "refused") + (outcome.empty() ? "" : ": " + outcome));
  server_.broadcast("{\"audit\":{\"time\":\"" + utc_time(std::time(nullptr)) +
                    "\",\"uid\":" + (c.uid == static_cast<uid_t>(-1) ? std::string("null") : uid) +
                    ",\"pid\":" + std::to_string(c.pid) + ",\"command\":\"" + json_escape(command) +
                    "\",\"ok\":" + (ok ? "true" : "false") + ",\"result\":\"" +
                    json_escape(outcome) + "\"}}\n");
}

void Host::wait_signals() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGTERM || sig == SIGINT) {
      log_info(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      stop();
      return;
    }
    if (sig == SIGHUP) {
      log_info("SIGHUP: reloading " +
               (cfg_.config_file.empty() ? "(no config file)" : cfg_.config_file));
      reload(false);
    }
    if (sig == SIGUSR1) {
      log_info("SIGUSR1: plugins reopen their log files");
      for (auto& p : plugins_)
        if (p->lib->plugin().reopen_logs) p->lib->plugin().reopen_logs(p->state);
    }
    wait_signals();
  });
}

// Whole or nothing: the new file is parsed, the host's part checked (the
// socket group resolved) and every plugin asked (check_config, against its
// running state) before anything changes; then the host's part and each
// plugin's are applied. Only a plugin failing in its apply step (the kernel
// refusing a map write) leaves the host's part applied: the answer says so.
Host::ReloadResult Host::reload(bool force) {
  sd_notify("RELOADING=1");
  std::string what = cfg_.config_file.empty() ? "(no config file)" : cfg_.config_file;
  ReloadResult result;
  last_reload_.at = std::time(nullptr);
  try {
    HostConfig next = load_config(cli_);
    std::vector<std::string> notes;
    if (next.plugins != cfg_.plugins)
      notes.push_back("the plugin list changed; that takes a restart (kept the loaded plugins)");
    if (next.socket_path != cfg_.socket_path)
      notes.push_back("the socket path changed; that takes a restart (kept " + cfg_.socket_path +
                      ")");
    next.plugins = cfg_.plugins;
    next.socket_path = cfg_.socket_path;
    server_.check(next);
    for (auto& p : plugins_) {
      if (!p->lib->plugin().check_config) continue;
      SectionView section(next, p->name());
      char err[512] = "";
      if (p->lib->plugin().check_config(p->state, &section.section, err, sizeof err) != 0)
        throw ConfigError(std::string(*err ? err : "rejected") + " (plugin " + p->name() + ")");
    }
    // A new metrics-listen is bound now, the last check: a reload whose
    // address cannot be bound is refused with nothing applied.
    MetricsServer::Prepared listener = metrics_.prepare(next.metrics_listen);
    bool relisten = next.metrics_listen != metrics_.address();
    metrics_.serve(std::move(listener));  // (throws only with the old listener kept)
    if (relisten)
      notes.push_back(next.metrics_listen
                          ? "metrics on http://" + next.metrics_listen->text() + "/metrics"
                          : "metrics listener closed");
    server_.reconfigure(next);
    set_log_level(next.log_level);
    cfg_ = std::move(next);
    std::string applied = "reloaded " + what;
    for (const std::string& n : notes) applied += "\n" + n;
    bool plugins_ok = true;
    for (auto& p : plugins_) {
      SectionView section(cfg_, p->name());
      if (auto apply = p->lib->apply_config()) {
        char msg[1024] = "";
        int rc = apply(p->state, &section.section, force ? XDPFW_APPLY_FORCE : 0, msg, sizeof msg);
        plugins_ok &= rc == 0;
        applied += "\n" + p->name() + (rc == 0 ? ": " : ": refused, its config stays: ") +
                   (*msg      ? msg
                    : rc == 0 ? "applied"
                              : "no reason given");
      } else if (p->lib->plugin().reload) {
        p->lib->plugin().reload(p->state, &section.section);
        applied += "\n" + p->name() + ": applied";
      }
    }
    result = {plugins_ok, applied};
  } catch (const std::exception& e) {
    result = {false, std::string("reload refused, the running config stays: ") + e.what()};
  }
  std::string one_line = result.text;
  std::replace(one_line.begin(), one_line.end(), '\n', ';');
  ++(result.ok ? reloads_applied_ : reloads_refused_);
  if (result.ok) {
    log_info("reload: new config in effect: " + one_line);
    last_reload_.in_effect_since = last_reload_.at;
  } else {
    log_error(one_line);
  }
  last_reload_.ok = result.ok;
  last_reload_.text = result.text;
  sd_notify("READY=1");
  return result;
}

void Host::stop() {
  if (stopping_) return;
  stopping_ = true;
  sd_notify("STOPPING=1");
  server_.stop();
  metrics_.stop();
  unload_plugins();
  signals_.cancel();
  io_.stop();
}

int Host::run() {
  try {
    server_.start(cfg_);
    if (cfg_.metrics_listen)
      metrics_.serve({cfg_.metrics_listen, metrics_.listen(*cfg_.metrics_listen)});
    auto monitor = std::make_unique<netlink::LibnlLinkMonitor>(
        io_, cfg_.netlink_rcvbuf, [](const std::string& m) { log_warn(m); });
    links_ = std::move(monitor);
    links_->start([this](const netlink::LinkEvent& ev) { publish_link_event(ev); });
    load_plugins();
  } catch (const std::exception& e) {
    log_error(e.what());
    unload_plugins();
    metrics_.stop();
    server_.stop();
    return 1;
  }
  wait_signals();
  last_reload_.started = last_reload_.in_effect_since = std::time(nullptr);
  sd_notify("READY=1");
  log_info(std::string("xdpfw-host ") + version + " ready, " + std::to_string(plugins_.size()) +
           " plugin(s)");
  io_.run();
  stop();
  return 0;
}

// At least as strict as the agent: what it would refuse at start is an
// error here, and so is what it would only warn about (a section no loaded
// plugin reads, no plugin at all), since that is a config that does nothing.
int Host::check_config(const HostConfig& cfg) {
  int bad = 0;
  const std::string file = cfg.config_file.empty() ? "<config>" : cfg.config_file;
  auto error = [&](const std::string& msg) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    ++bad;
  };
  if (cfg.plugins.empty())
    error(file +
          ": no plugin to load: the agent would run with nothing to do (add 'plugin = PATH' to "
          "[host], or give --plugin PATH)");
  std::map<std::string, std::string> loaded;  // name -> path
  for (const std::string& path : cfg.plugins) {
    try {
      PluginLibrary lib(path);
      const std::string name = lib.plugin().name;
      if (auto it = loaded.find(name); it != loaded.end())
        throw PluginError("plugin " + path + ": a plugin named '" + name +
                          "' is already loaded from " + it->second);
      loaded[name] = path;
      if (lib.plugin().check_config) {
        SectionView section(cfg, name);
        char err[512] = "";
        if (lib.plugin().check_config(nullptr, &section.section, err, sizeof err) != 0)
          throw PluginError("plugin " + path + ": " + (*err ? err : "section rejected"));
      }
      std::printf("plugin %s (%s): ok\n", name.c_str(), path.c_str());
    } catch (const std::exception& e) {
      error(e.what());
    }
  }
  for (const auto& [name, s] : cfg.plugin_sections)
    if (!loaded.count(name)) {
      std::string names;
      for (const auto& [n, path] : loaded) names += (names.empty() ? "" : ", ") + n;
      error(file + ":" + std::to_string(s.line) + ": section [plugin." + name +
            "] belongs to no loaded plugin (loaded: " + (names.empty() ? "none" : names) + ")");
    }
  if (!bad) std::printf("config ok\n");
  return bad ? 1 : 0;
}

}  // namespace xdpfw::host
