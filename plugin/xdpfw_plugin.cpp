// xdpfw_plugin.cpp: libxdpfw.so, the firewall as an xdpfw-host plugin: the
// C ABI of host/xdpfw_plugin.h on one side, the FirewallService on the
// other. No exception crosses into the host.
#include <malloc.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "firewall_service.hpp"
#include "kernel_parts.hpp"
#include "rule.hpp"
#include "xdpfw_plugin.h"

namespace {

using xdpfw::CommandOutput;
using xdpfw::FirewallConfig;
using xdpfw::FirewallService;

struct State;

struct Command {
  const xdpfw::CommandSpec* spec;
  State* state;
};

struct State {
  const xdpfw_host_api* api = nullptr;
  std::unique_ptr<FirewallService> fw;
  std::vector<std::unique_ptr<Command>> commands;
};

void copy_error(char* err, size_t len, const std::string& msg) {
  if (!err || !len) return;
  std::strncpy(err, msg.c_str(), len - 1);
  err[len - 1] = '\0';
}

FirewallConfig read_config(const xdpfw_config_section* cfg) {
  std::vector<xdpfw::ConfigLine> lines;
  for (size_t i = 0; i < cfg->count; ++i)
    lines.push_back({cfg->entries[i].key, cfg->entries[i].value, cfg->entries[i].line});
  return xdpfw::parse_firewall_config(cfg->file ? cfg->file : "", lines);
}

int on_command(void* ctx, const char* args, const char* payload, size_t len, xdpfw_reply* reply) {
  auto* c = static_cast<Command*>(ctx);
  CommandOutput out;
  try {
    std::string p = payload ? std::string(payload, len) : std::string();
    out = c->spec->fn(*c->state->fw, args ? args : "", payload ? &p : nullptr);
  } catch (const std::exception& e) {
    out = {false, e.what()};
  }
  c->state->api->reply_write(reply, out.text.data(), out.text.size());
  if (out.ok && out.stream) {
    uint64_t id = c->state->api->reply_stream(reply);
    if (id) c->state->fw->watchers().add(id);
  }
  return out.ok ? 0 : 1;
}

void on_link(void* ctx, const xdpfw_link_event* ev) {
  auto* s = static_cast<State*>(ctx);
  auto change = ev->type == XDPFW_LINK_REMOVED ? xdpfw::AttachManager::Change::removed
                : ev->type == XDPFW_LINK_ADDED ? xdpfw::AttachManager::Change::added
                                               : xdpfw::AttachManager::Change::changed;
  try {
    s->fw->on_link(change, ev->ifindex, ev->name ? ev->name : "", ev->kind ? ev->kind : "",
                   ev->up != 0);
  } catch (const std::exception& e) {
    s->api->log(s->api->host, XDPFW_LOG_ERROR, e.what());
  }
}

void on_events(void* ctx, int) {
  auto* s = static_cast<State*>(ctx);
  try {
    s->fw->on_events();
  } catch (const std::exception& e) {
    s->api->log(s->api->host, XDPFW_LOG_ERROR, e.what());
  }
}

void xdpfw_reopen(void* state) {
  auto* s = static_cast<State*>(state);
  s->fw->log_reopen();
}

int xdpfw_init(const xdpfw_host_api* api, const xdpfw_config_section* cfg, void** state, char* err,
               size_t err_len) {
  // A fixed mmap threshold: glibc's own rises (up to 32 MiB) after the first
  // big free, so that the transients of a 100,000-rule replace (the parsed
  // list, the compiler's tables, the datapath's batches) land in the heap and
  // stay in the RSS after they are freed. From 1 MiB up they are mappings of
  // their own, given back on free (docs/ARCHITECTURE.md, "Agent memory").
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  auto s = std::make_unique<State>();
  s->api = api;
  try {
    FirewallConfig fc = read_config(cfg);
    State* raw = s.get();
    s->fw = std::make_unique<FirewallService>(
        fc,
        [raw](int level, const std::string& msg) {
          raw->api->log(raw->api->host, static_cast<xdpfw_log_level>(level), msg.c_str());
        },
        xdpfw::kernel_parts(fc));
  } catch (const std::exception& e) {
    copy_error(err, err_len, e.what());
    return 1;
  }
  State* st = s.get();
  FirewallService& fw = *st->fw;
  bool streams = api->size >= offsetof(xdpfw_host_api, stream_close) + sizeof(api->stream_close) &&
                 api->reply_stream;
  for (const xdpfw::CommandSpec& c : xdpfw::firewall_commands()) {
    if (c.needs_streams && !streams) continue;
    st->commands.push_back(std::make_unique<Command>(Command{&c, st}));
    api->add_command(api->host, c.name, c.usage, c.flags, on_command, st->commands.back().get());
  }
  if (streams)
    fw.watchers().set_writer([st](uint64_t stream, const std::string& bytes) {
      return st->api->stream_write(st->api->host, stream, bytes.data(), bytes.size());
    });
  api->watch_fd(api->host, fw.events_fd(), on_events, st);
  if (fw.rules_watch_fd() >= 0)
    api->watch_fd(
        api->host, fw.rules_watch_fd(),
        [](void* ctx, int) { static_cast<State*>(ctx)->fw->on_rules_event(); }, st);
  // The rings wake the loop only once an eighth of one is full
  // (KernelDatapath::events_fd): a trickle of events is read here, within
  // 100 ms.
  api->add_timer(
      api->host, 100, 1, [](void* ctx) { on_events(ctx, -1); }, st);
  // The datapath's catch-up after a change is finished here, a grace period
  // (tens of ms) after it, rather than by the next command.
  api->add_timer(
      api->host, 100, 1, [](void* ctx) { static_cast<State*>(ctx)->fw->settle(); }, st);
  api->subscribe_links(api->host, on_link, st);
  *state = s.release();
  return 0;
}

void xdpfw_fini(void* state) {
  delete static_cast<State*>(state);
}

int xdpfw_check(void* state, const xdpfw_config_section* cfg, char* err, size_t err_len) {
  try {
    if (state)
      static_cast<State*>(state)->fw->check_reload(read_config(cfg));
    else
      FirewallService::check(read_config(cfg));
  } catch (const std::exception& e) {
    copy_error(err, err_len, e.what());
    return 1;
  }
  return 0;
}

void xdpfw_reload(void* state, const xdpfw_config_section* cfg) {
  auto* s = static_cast<State*>(state);
  try {
    s->fw->reload(read_config(cfg));
  } catch (const std::exception& e) {
    s->api->log(s->api->host, XDPFW_LOG_ERROR, (std::string("reload: ") + e.what()).c_str());
  }
}

int xdpfw_apply(void* state, const xdpfw_config_section* cfg, uint32_t flags, char* msg,
                size_t msg_len) {
  auto* s = static_cast<State*>(state);
  try {
    copy_error(msg, msg_len, s->fw->reload(read_config(cfg), (flags & XDPFW_APPLY_FORCE) != 0));
    return 0;
  } catch (const std::exception& e) {
    copy_error(msg, msg_len, e.what());
    s->api->log(s->api->host, XDPFW_LOG_ERROR, (std::string("reload: ") + e.what()).c_str());
    return 1;
  }
}

const xdpfw_plugin descriptor = {
    .abi_major = XDPFW_PLUGIN_ABI_MAJOR,
    .abi_minor = XDPFW_PLUGIN_ABI_MINOR,
    .size = sizeof(xdpfw_plugin),
    .name = "xdpfw",
    .version = "0.1.0",
    .init = xdpfw_init,
    .fini = xdpfw_fini,
    .check_config = xdpfw_check,
    .reload = xdpfw_reload,
    .reopen_logs = xdpfw_reopen,
    .apply_config = xdpfw_apply,
};

}  // namespace

extern "C" XDPFW_PLUGIN_EXPORT const xdpfw_plugin* xdpfw_plugin_entry(void) {
  return &descriptor;
}
