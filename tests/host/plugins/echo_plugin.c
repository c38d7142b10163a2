/* echo_plugin.c: a tiny plugin, in C, that proves xdpfw-host is generic and
 * exercises every service of the ABI for the host's tests:
 *   echo TEXT            prefix + TEXT                (read-only)
 *   set prefix TEXT      changes the prefix           (changes state)
 *   count-lines <<       number of payload lines
 *   show counters        link events, reopens, ticks, pokes, reloads
 *   poke                 writes a byte to a pipe the host watches
 * Config [plugin.echo]: prefix = TEXT, tick-ms = N, fail-init = yes.
 * Built with -DECHO_ABI_MAJOR=99 it is a plugin of another ABI. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdpfw_plugin.h"

#ifndef ECHO_ABI_MAJOR
#define ECHO_ABI_MAJOR XDPFW_PLUGIN_ABI_MAJOR
#endif
#ifndef ECHO_ABI_MINOR
#define ECHO_ABI_MINOR XDPFW_PLUGIN_ABI_MINOR
#endif

struct echo {
	const struct xdpfw_host_api *api;
	char prefix[256];
	unsigned long link_events, reopens, ticks, pokes, reloads;
	int pipe[2];
};

static void say(const struct echo *e, struct xdpfw_reply *r, const char *s)
{
	e->api->reply_write(r, s, strlen(s));
}

static int parse_section(const struct xdpfw_config_section *cfg, char *prefix, size_t prefix_len,
			 unsigned long *tick_ms, int *fail, char *err, size_t err_len)
{
	size_t i;

	for (i = 0; i < cfg->count; i++) {
		const struct xdpfw_config_entry *kv = &cfg->entries[i];

		if (!strcmp(kv->key, "prefix")) {
			if (strlen(kv->value) >= prefix_len) {
				snprintf(err, err_len, "%s:%u: prefix: longer than %zu bytes",
					 cfg->file, kv->line, prefix_len - 1);
				return -1;
			}
			if (prefix)
				strcpy(prefix, kv->value);
		} else if (!strcmp(kv->key, "tick-ms")) {
			char *end;
			unsigned long v = strtoul(kv->value, &end, 10);

			if (!*kv->value || *end || v == 0 || v > 60000) {
				snprintf(err, err_len,
					 "%s:%u: tick-ms: '%s' is not a number 1-60000", cfg->file,
					 kv->line, kv->value);
				return -1;
			}
			if (tick_ms)
				*tick_ms = v;
		} else if (!strcmp(kv->key, "fail-init")) {
			if (fail)
				*fail = !strcmp(kv->value, "yes");
		} else {
			snprintf(
			    err, err_len,
			    "%s:%u: unknown key '%s' in [plugin.echo] (expected prefix, tick-ms, "
			    "fail-init)",
			    cfg->file, kv->line, kv->key);
			return -1;
		}
	}
	return 0;
}

static int cmd_echo(void *ctx, const char *args, const char *payload, size_t len,
		    struct xdpfw_reply *r)
{
	struct echo *e = ctx;

	(void)payload;
	(void)len;
	say(e, r, e->prefix);
	say(e, r, args);
	return 0;
}

static int cmd_set_prefix(void *ctx, const char *args, const char *payload, size_t len,
			  struct xdpfw_reply *r)
{
	struct echo *e = ctx;

	(void)payload;
	(void)len;
	if (strlen(args) >= sizeof(e->prefix)) {
		say(e, r, "set prefix: longer than 255 bytes");
		return 1;
	}
	strcpy(e->prefix, args);
	say(e, r, "ok");
	return 0;
}

static int cmd_count_lines(void *ctx, const char *args, const char *payload, size_t len,
			   struct xdpfw_reply *r)
{
	char buf[64];
	size_t i, n = 0;

	(void)args;
	if (!payload) {
		say(ctx, r,
		    "count-lines: expects a payload: 'count-lines <<', lines, an empty line");
		return 1;
	}
	for (i = 0; i < len; i++)
		n += payload[i] == '\n';
	snprintf(buf, sizeof buf, "%zu lines, %zu bytes", n, len);
	say(ctx, r, buf);
	return 0;
}

static int cmd_counters(void *ctx, const char *args, const char *payload, size_t len,
			struct xdpfw_reply *r)
{
	struct echo *e = ctx;
	char buf[512];

	(void)args;
	(void)payload;
	(void)len;
	snprintf(buf, sizeof buf,
		 "link_events %lu\nreopens %lu\nticks %lu\npokes %lu\nreloads %lu\nprefix %s",
		 e->link_events, e->reopens, e->ticks, e->pokes, e->reloads, e->prefix);
	say(e, r, buf);
	return 0;
}

static int cmd_poke(void *ctx, const char *args, const char *payload, size_t len,
		    struct xdpfw_reply *r)
{
	struct echo *e = ctx;

	(void)args;
	(void)payload;
	(void)len;
	if (write(e->pipe[1], "x", 1) != 1) {
		say(e, r, "poke: write failed");
		return 1;
	}
	say(e, r, "poked");
	return 0;
}

/* The connection becomes a (silent) live stream, as "show events" does. */
static int cmd_watch(void *ctx, const char *args, const char *payload, size_t len,
		     struct xdpfw_reply *r)
{
	struct echo *e = ctx;

	(void)args;
	(void)payload;
	(void)len;
	if (!e->api->reply_stream || !e->api->reply_stream(r)) {
		say(e, r, "watch: the host has no streams");
		return 1;
	}
	return 0;
}

static void on_pipe(void *ctx, int fd)
{
	struct echo *e = ctx;
	char c;

	if (read(fd, &c, 1) == 1)
		e->pokes++;
}

static void on_tick(void *ctx)
{
	((struct echo *)ctx)->ticks++;
}

static void on_link(void *ctx, const struct xdpfw_link_event *ev)
{
	(void)ev;
	((struct echo *)ctx)->link_events++;
}

static int echo_init(const struct xdpfw_host_api *api, const struct xdpfw_config_section *cfg,
		     void **state, char *err, size_t err_len)
{
	struct echo *e = calloc(1, sizeof(*e));
	unsigned long tick_ms = 0;
	int fail = 0;

	if (!e) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	e->api = api;
	strcpy(e->prefix, "echo: ");
	if (parse_section(cfg, e->prefix, sizeof(e->prefix), &tick_ms, &fail, err, err_len) ||
	    pipe(e->pipe)) {
		free(e);
		return -1;
	}
	if (fail) {
		snprintf(err, err_len, "told to fail by fail-init = yes");
		close(e->pipe[0]);
		close(e->pipe[1]);
		free(e);
		return -1;
	}
	api->add_command(api->host, "echo", "TEXT: answers the prefix and TEXT", 0, cmd_echo, e);
	api->add_command(api->host, "set prefix", "TEXT: changes echo's prefix", XDPFW_CMD_MUTATES,
			 cmd_set_prefix, e);
	api->add_command(api->host, "count-lines", "<< LINES: counts the payload's lines", 0,
			 cmd_count_lines, e);
	api->add_command(api->host, "show counters", "the echo plugin's counters", 0, cmd_counters,
			 e);
	api->add_command(api->host, "poke", "wakes the plugin's watched pipe", XDPFW_CMD_MUTATES,
			 cmd_poke, e);
	if (api->size > offsetof(struct xdpfw_host_api, reply_stream))
		api->add_command(api->host, "watch", "a live stream that says nothing", 0,
				 cmd_watch, e);
	api->watch_fd(api->host, e->pipe[0], on_pipe, e);
	if (tick_ms)
		api->add_timer(api->host, tick_ms, 1, on_tick, e);
	api->subscribe_links(api->host, on_link, e);
	api->log(api->host, XDPFW_LOG_INFO, "echo plugin ready");
	*state = e;
	return 0;
}

static void echo_fini(void *state)
{
	struct echo *e = state;

	close(e->pipe[0]);
	close(e->pipe[1]);
	free(e);
}

static int echo_check(void *state, const struct xdpfw_config_section *cfg, char *err,
		      size_t err_len)
{
	char prefix[256];

	(void)state;
	return parse_section(cfg, prefix, sizeof(prefix), NULL, NULL, err, err_len);
}

static void echo_reload(void *state, const struct xdpfw_config_section *cfg)
{
	struct echo *e = state;
	char err[256];

	strcpy(e->prefix, "echo: ");
	parse_section(cfg, e->prefix, sizeof(e->prefix), NULL, NULL, err, sizeof(err));
	e->reloads++;
}

#if ECHO_ABI_MINOR >= 2
/* ABI 1.2: the same, answering what it applied. */
static int echo_apply(void *state, const struct xdpfw_config_section *cfg, uint32_t flags,
		      char *msg, size_t msg_len)
{
	struct echo *e = state;
	char prefix[256] = "echo: ";

	if (parse_section(cfg, prefix, sizeof(prefix), NULL, NULL, msg, msg_len))
		return -1;
	strcpy(e->prefix, prefix);
	e->reloads++;
	snprintf(msg, msg_len, "prefix '%s'%s", e->prefix,
		 (flags & XDPFW_APPLY_FORCE) ? " (forced)" : "");
	return 0;
}
#endif

static void echo_reopen(void *state)
{
	((struct echo *)state)->reopens++;
}

static const struct xdpfw_plugin echo_plugin = {
    .abi_major = ECHO_ABI_MAJOR,
    .abi_minor = ECHO_ABI_MINOR,
    .size = sizeof(struct xdpfw_plugin),
    .name = "echo",
    .version = "1.0",
    .init = echo_init,
    .fini = echo_fini,
    .check_config = echo_check,
    .reload = echo_reload,
    .reopen_logs = echo_reopen,
#if ECHO_ABI_MINOR >= 2
    .apply_config = echo_apply,
#endif
};

XDPFW_PLUGIN_EXPORT const struct xdpfw_plugin *xdpfw_plugin_entry(void)
{
	return &echo_plugin;
}
