/* xdpfw_plugin.h: the plugin ABI of xdpfw-host. Plain C: no C++ or Boost
 * type crosses it. A plugin exports one function,
 *
 *     const struct xdpfw_plugin *xdpfw_plugin_entry(void);
 *
 * and the host refuses it unless abi_major equals XDPFW_PLUGIN_ABI_MAJOR and
 * abi_minor is at most the host's (the host may be newer within a major).
 * Structs carry their size so that either side can grow them at the end in a
 * minor version. All callbacks run on the host's one event-loop thread; a
 * plugin must not block in them. */
#ifndef XDPFW_PLUGIN_H
#define XDPFW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XDPFW_PLUGIN_ABI_MAJOR 1
#define XDPFW_PLUGIN_ABI_MINOR 2
#define XDPFW_PLUGIN_ENTRY "xdpfw_plugin_entry"

#if defined(__GNUC__)
#define XDPFW_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define XDPFW_PLUGIN_EXPORT
#endif

struct xdpfw_host;  /* opaque: the host's handle for this plugin */
struct xdpfw_reply; /* opaque: output of one control command */

enum xdpfw_log_level {
  XDPFW_LOG_ERROR = 0,
  XDPFW_LOG_WARN = 1,
  XDPFW_LOG_INFO = 2,
  XDPFW_LOG_DEBUG = 3,
};

/* One "key = value" of the plugin's config section ([plugin.NAME]). */
struct xdpfw_config_entry {
  const char* key;
  const char* value;
  unsigned line; /* in file, for error messages */
};

struct xdpfw_config_section {
  const char* file; /* "" when there is no config file */
  size_t count;
  const struct xdpfw_config_entry* entries;
};

enum xdpfw_link_event_type {
  XDPFW_LINK_ADDED = 1, /* also every link present when the monitor starts */
  XDPFW_LINK_REMOVED = 2,
  XDPFW_LINK_CHANGED = 3, /* renamed, up/down, ... */
};

struct xdpfw_link_event {
  uint32_t size;
  enum xdpfw_link_event_type type;
  int ifindex;
  const char* name;
  const char* old_name; /* set when renamed, else NULL */
  const char* kind;     /* "veth", "vlan", ...; "" when the kernel gives none */
  int up;               /* IFF_UP */
  int running;          /* IFF_RUNNING */
};

/* Command flags */
#define XDPFW_CMD_MUTATES 1u /* changes state: refused to read-only clients */

/* A control command handler. args: the text after the command's name;
 * payload: the lines after a command ending in "<<" (NULL if none).
 * Write output with api->reply_write. Return 0, or non-zero for an error,
 * in which case what was written is the error message. */
typedef int (*xdpfw_command_fn)(void* ctx, const char* args, const char* payload,
                                size_t payload_len, struct xdpfw_reply* reply);

typedef void (*xdpfw_fd_fn)(void* ctx, int fd);
typedef void (*xdpfw_timer_fn)(void* ctx);
typedef void (*xdpfw_link_fn)(void* ctx, const struct xdpfw_link_event* ev);

/* What the host offers a plugin. Registrations return an id > 0, or 0 on
 * error; everything a plugin registered is cancelled when it is unloaded. */
struct xdpfw_host_api {
  uint32_t size;
  uint32_t abi_major, abi_minor;
  struct xdpfw_host* host;

  void (*log)(struct xdpfw_host* h, enum xdpfw_log_level level, const char* msg);

  /* Calls fn whenever fd is readable, until unwatched. The fd stays the plugin's. */
  uint64_t (*watch_fd)(struct xdpfw_host* h, int fd, xdpfw_fd_fn fn, void* ctx);
  void (*unwatch_fd)(struct xdpfw_host* h, uint64_t id);

  /* Calls fn after ms milliseconds, then every ms if periodic. */
  uint64_t (*add_timer)(struct xdpfw_host* h, uint64_t ms, int periodic, xdpfw_timer_fn fn,
                        void* ctx);
  void (*cancel_timer)(struct xdpfw_host* h, uint64_t id);

  /* name may have several words ("show stats"); usage is one line for help. */
  uint64_t (*add_command)(struct xdpfw_host* h, const char* name, const char* usage, uint32_t flags,
                          xdpfw_command_fn fn, void* ctx);
  void (*reply_write)(struct xdpfw_reply* r, const char* data, size_t len);

  /* Link events from the host's netlink monitor; the current links are
   * reported as XDPFW_LINK_ADDED first. */
  uint64_t (*subscribe_links)(struct xdpfw_host* h, xdpfw_link_fn fn, void* ctx);

  /* ABI 1.1: live streams. Inside a command handler, turns its connection
   * into a stream that the plugin writes to later (what the handler wrote so
   * far goes first); returns the stream id. stream_write returns 0 when
   * queued, 1 when dropped because the client reads too slowly (the host's
   * queue per stream is bounded), -1 when the stream is closed: forget it. */
  uint64_t (*reply_stream)(struct xdpfw_reply* r);
  int (*stream_write)(struct xdpfw_host* h, uint64_t stream, const char* data, size_t len);
  void (*stream_close)(struct xdpfw_host* h, uint64_t stream);
};

struct xdpfw_plugin {
  uint32_t abi_major, abi_minor;
  uint32_t size;    /* sizeof(struct xdpfw_plugin) as the plugin was built */
  const char* name; /* config section [plugin.NAME] */
  const char* version;

  /* Starts the plugin with its config section. On failure returns
   * non-zero with a message in err. *state is passed to the others. */
  int (*init)(const struct xdpfw_host_api* api, const struct xdpfw_config_section* cfg,
              void** state, char* err, size_t err_len);
  /* Stops it. Called once, before everything it registered is cancelled. */
  void (*fini)(void* state);
  /* Validates a new config section without applying it (reload, first
   * phase: every plugin is asked before any change is made). state is NULL
   * under --check-config; otherwise the check is against the running
   * plugin, including what the section names (files). May be NULL: every
   * section is accepted. */
  int (*check_config)(void* state, const struct xdpfw_config_section* cfg, char* err,
                      size_t err_len);
  /* Applies a section that check_config accepted. May be NULL. */
  void (*reload)(void* state, const struct xdpfw_config_section* cfg);
  /* SIGUSR1: reopen log files (logrotate). May be NULL. */
  void (*reopen_logs)(void* state);

  /* ABI 1.2 (read only when size covers it). Applies a section that
   * check_config accepted, as reload does, and answers: 0 with what it
   * applied in msg, or non-zero with why, having changed nothing. flags:
   * XDPFW_APPLY_FORCE re-applies what the section names (files) even where
   * unchanged (the "reload" command; SIGHUP passes 0). May be NULL: reload
   * is called instead. */
  int (*apply_config)(void* state, const struct xdpfw_config_section* cfg, uint32_t flags,
                      char* msg, size_t msg_len);
};

#define XDPFW_APPLY_FORCE 1u

/* The descriptor's size in ABI 1.0 and 1.1; a newer host reads the fields
 * after it only when the plugin's size covers them. */
#define XDPFW_PLUGIN_SIZE_1_1 offsetof(struct xdpfw_plugin, apply_config)

typedef const struct xdpfw_plugin* (*xdpfw_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* XDPFW_PLUGIN_H */
