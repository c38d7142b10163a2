// The real xdpfw-host with the echo test plugin, driven by real socat: the
// process (options, signals, refusals), the control socket (framing, limits,
// hostile clients, permissions), the plugin ABI, and reload.
#include <grp.h>
#include <pwd.h>

#include "host/host_process.hpp"

using namespace xdpfw::test;

namespace {

const std::string echo_plugin = XDPFW_ECHO_PLUGIN;

// A temporary folder with a config and a socket path in it.
struct Agent {
  explicit Agent(const std::string& host_extra = "", const std::string& echo_section = "")
      : sock(dir / "xdpfw.sock"), conf(dir / "xdpfw.conf") {
    write_config(host_extra, echo_section);
  }
  void write_config(const std::string& host_extra, const std::string& echo_section) {
    write_file(conf, "[host]\nsocket = " + sock.string() + "\nplugin = " + echo_plugin + "\n" +
                         host_extra + "\n[plugin.echo]\n" + echo_section + "\n");
  }
  std::unique_ptr<HostProcess> start(std::vector<std::string> extra = {}, bool wait = true) {
    std::vector<std::string> args = {"--config", conf.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<HostProcess>(dir, args, wait);
  }
  std::string ask(const std::string& input) { return socat(sock, input); }
  TempDir dir;
  fs::path sock, conf;
};

// Permission tests connect as nobody/nogroup, which Debian always has.
void require_nobody() {
  BOOST_TEST_REQUIRE(geteuid() == 0u, "permission tests switch users: run them as root");
  BOOST_TEST_REQUIRE(getpwnam("nobody") != nullptr);
  BOOST_TEST_REQUIRE(getgrnam("nogroup") != nullptr);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(host_process)

BOOST_AUTO_TEST_CASE(help_version_and_bad_options) {
  int st = 0;
  std::string out = shell(std::string(XDPFW_HOST_BIN) + " --help", &st);
  BOOST_TEST(st == 0);
  BOOST_TEST(out.find("--plugin") != std::string::npos);
  out = shell(std::string(XDPFW_HOST_BIN) + " --version", &st);
  BOOST_TEST(st == 0);
  BOOST_TEST(out.find("xdpfw-host 0.1.0 (plugin ABI 1.1)") == 0u);
  out = shell(std::string(XDPFW_HOST_BIN) + " --frobnicate 2>&1", &st);
  BOOST_TEST(st == 2);
  BOOST_TEST(out.find("unrecognised option '--frobnicate'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(example_rules_file_is_valid) {
  int st = 0;
  std::string conf = std::string("/tmp/xdpfw-example-") + std::to_string(getpid()) + ".conf";
  write_file(conf,
             std::string("[plugin.xdpfw]\nrules = ") + XDPFW_SOURCE_DIR + "/conf/rules.example\n");
  std::string out = shell(std::string(XDPFW_HOST_BIN) + " --check-config --config " + conf +
                              " --plugin " + XDPFW_FIREWALL_PLUGIN + " 2>&1",
                          &st);
  fs::remove(conf);
  BOOST_TEST(st == 0);
  BOOST_TEST(out.find("plugin xdpfw") != std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(config_errors_name_file_and_line) {
  Agent a("max-clients = lots");
  auto h = a.start({}, false);
  BOOST_TEST(h->exit_code() == 2);
  BOOST_TEST(h->log().find(a.conf.string() + ":4: max-clients: 'lots' is not a number") !=
                 std::string::npos,
             h->log());
}

BOOST_AUTO_TEST_CASE(check_config_reports_plugin_sections) {
  Agent good("", "prefix = hi");
  int st = 0;
  std::string out = shell(
      std::string(XDPFW_HOST_BIN) + " --check-config --config " + good.conf.string() + " 2>&1",
      &st);
  BOOST_TEST(st == 0);
  BOOST_TEST(out.find("config ok") != std::string::npos, out);
  Agent bad("", "colour = red");
  out = shell(
      std::string(XDPFW_HOST_BIN) + " --check-config --config " + bad.conf.string() + " 2>&1", &st);
  BOOST_TEST(st == 1);
  BOOST_TEST(out.find(bad.conf.string() + ":6: unknown key 'colour' in [plugin.echo]") !=
                 std::string::npos,
             out);
}

BOOST_AUTO_TEST_CASE(sigterm_stops_cleanly_and_removes_the_socket) {
  Agent a;
  auto h = a.start();
  BOOST_TEST(fs::exists(a.sock));
  h->signal(SIGTERM);
  BOOST_TEST(h->exit_code() == 0);
  BOOST_TEST(!fs::exists(a.sock));
  BOOST_TEST(h->log().find("unloaded plugin echo") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(second_agent_on_the_socket_is_refused) {
  Agent a;
  auto first = a.start();
  auto second = a.start({}, false);
  BOOST_TEST(second->exit_code() == 1);
  BOOST_TEST(second->log().find("another agent is listening on it") != std::string::npos,
             second->log());
  BOOST_TEST(a.ask("echo still here\n") == "echo: still here\n\n");
}

BOOST_AUTO_TEST_CASE(stale_socket_is_replaced) {
  Agent a;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, a.sock.c_str(), sizeof addr.sun_path - 1);
  BOOST_TEST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  close(fd);  // the file stays, nobody listens: what a crash leaves
  auto h = a.start();
  BOOST_TEST(h->log().find("replacing stale socket") != std::string::npos);
  BOOST_TEST(a.ask("echo x\n") == "echo: x\n\n");
}

BOOST_AUTO_TEST_CASE(socket_mode_is_restrictive) {
  Agent a;
  auto h = a.start();
  struct stat st {};
  BOOST_TEST_REQUIRE(stat(a.sock.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0660u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(plugins)

BOOST_AUTO_TEST_CASE(broken_plugins_are_refused_with_the_file_named) {
  TempDir d;
  write_file(d / "text.so", "this is not a shared object\n");
  struct {
    std::string path;
    std::string expect;
  } cases[] = {
      {XDPFW_ABI99_PLUGIN, "refused: it was built for plugin ABI 99.1, this host speaks 1.1"},
      {(d / "missing.so").string(), "cannot load it"},
      {(d / "text.so").string(), "cannot load it"},
      {XDPFW_NO_ENTRY_PLUGIN, "not an xdpfw plugin (no 'xdpfw_plugin_entry' symbol)"},
  };
  for (const auto& c : cases) {
    HostProcess h(d, {"--socket", (d / "s.sock").string(), "--plugin", c.path}, false);
    BOOST_TEST_INFO(c.path);
    BOOST_TEST(h.exit_code() == 1);
    BOOST_TEST(h.log().find("plugin " + c.path + ": " + c.expect) != std::string::npos, h.log());
    BOOST_TEST(!fs::exists(d / "s.sock"));
  }
}

BOOST_AUTO_TEST_CASE(older_minor_abi_loads) {
  TempDir d;
  HostProcess h(d, {"--socket", (d / "s.sock").string(), "--plugin", XDPFW_ABI10_PLUGIN});
  BOOST_TEST(!h.exited());
  BOOST_TEST(socat(d / "s.sock", "show plugins\n").find(" abi 1.0 ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(failing_init_is_refused) {
  Agent a("", "fail-init = yes");
  auto h = a.start({}, false);
  BOOST_TEST(h->exit_code() == 1);
  BOOST_TEST(
      h->log().find("plugin " + echo_plugin + ": init failed: told to fail") != std::string::npos,
      h->log());
  BOOST_TEST(!fs::exists(a.sock));
}

BOOST_AUTO_TEST_CASE(services_timers_fd_watch_log_reopen) {
  Agent a("", "tick-ms = 5");
  auto h = a.start();
  auto counter = [&](const std::string& name) {
    std::string out = a.ask("show counters\n");
    auto p = out.find(name + " ");
    return p == std::string::npos ? -1L : std::stol(out.substr(p + name.size() + 1));
  };
  BOOST_TEST(wait_until([&] { return counter("ticks") >= 3; }));        // a periodic timer
  BOOST_TEST(wait_until([&] { return counter("link_events") >= 1; }));  // at least lo, replayed
  BOOST_TEST(a.ask("poke\n") == "poked\n\n");
  BOOST_TEST(wait_until([&] { return counter("pokes") == 1; }));  // the watched pipe
  h->signal(SIGUSR1);
  BOOST_TEST(wait_until([&] { return counter("reopens") == 1; }));
  BOOST_TEST(h->log().find("echo: echo plugin ready") != std::string::npos);  // plugin log
  BOOST_TEST(a.ask("show plugins\n").find("echo 1.0 abi 1.1 " + echo_plugin) == 0u);
  BOOST_TEST(a.ask("show plugins json\n") ==
             "[{\"name\":\"echo\",\"version\":\"1.0\",\"abi\":\"1.1\",\"path\":\"" + echo_plugin +
                 "\"}]\n\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(control_socket)

BOOST_AUTO_TEST_CASE(one_shot_help_lists_host_and_plugin_commands) {
  Agent a;
  auto h = a.start();
  std::string out = a.ask("help\n");
  for (const char* cmd :
       {"help ", "version ", "show plugins ", "quit ", "echo ", "set prefix ", "count-lines "})
    BOOST_TEST((out.find(std::string("\n") + cmd) != std::string::npos || out.find(cmd) == 0u),
               cmd);
  BOOST_TEST(out.ends_with("\n\n"));
  BOOST_TEST(out.find("[changes state]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(errors_have_a_stable_prefix) {
  Agent a;
  auto h = a.start();
  BOOST_TEST(a.ask("frobnicate now\n") ==
             "ERR: unknown command 'frobnicate'; 'help' lists the commands\n\n");
  BOOST_TEST(a.ask("show plugins yaml\n") ==
             "ERR: show plugins: unexpected 'yaml' (expected nothing or 'json')\n\n");
  BOOST_TEST(a.ask("count-lines\n").find("ERR: count-lines: expects a payload") == 0u);
}

BOOST_AUTO_TEST_CASE(interactive_session_answers_each_command) {
  Agent a;
  auto h = a.start();
  Session s(a.sock);
  BOOST_TEST(s.command("version") == "xdpfw-host 0.1.0 (plugin ABI 1.1)\n\n");
  BOOST_TEST(s.command("set prefix >") == "ok\n\n");
  BOOST_TEST(s.command("echo one") == ">one\n\n");
  BOOST_TEST(s.command("bogus") == "ERR: unknown command 'bogus'; 'help' lists the commands\n\n");
  BOOST_TEST(s.command("echo two") == ">two\n\n");
  BOOST_TEST(s.command("quit") == "\n");
  BOOST_TEST(s.ended());  // the agent closed the connection
}

BOOST_AUTO_TEST_CASE(payload_command) {
  Agent a;
  auto h = a.start();
  BOOST_TEST(a.ask("count-lines <<\nfirst\nsecond line\nthird\n\necho after\n") ==
             "3 lines, 24 bytes\n\necho: after\n\n");
}

BOOST_AUTO_TEST_CASE(two_hundred_concurrent_clients) {
  Agent a;
  auto h = a.start();
  // Each client holds its connection for a second after its command, so
  // all 200 are connected at once.
  std::string script =
      "for i in $(seq 1 200); do (printf 'echo %s\\n' $i; sleep 1) | timeout 60 "
      "socat - UNIX-CONNECT:" +
      a.sock.string() + " > " + a.dir.path.string() + "/out.$i 2>&1 & done; wait";
  shell(script);
  int good = 0;
  for (int i = 1; i <= 200; ++i)
    good +=
        read_file(a.dir / ("out." + std::to_string(i))) == "echo: " + std::to_string(i) + "\n\n";
  BOOST_TEST(good == 200);
}

BOOST_AUTO_TEST_CASE(one_mebibyte_line_is_refused_and_the_agent_serves_on) {
  Agent a;
  auto h = a.start();
  std::string out = a.ask(std::string(1 << 20, 'a') + "\n");
  BOOST_TEST(out == "ERR: line longer than 65536 bytes; connection closed\n\n");
  BOOST_TEST(a.ask("echo fine\n") == "echo: fine\n\n");
}

BOOST_AUTO_TEST_CASE(binary_garbage_does_not_hurt) {
  Agent a;
  auto h = a.start();
  std::string junk;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245 + 12345;
    junk.push_back(static_cast<char>(x >> 16));
  }
  int st = 0;
  socat(a.sock, junk, "", &st);
  BOOST_TEST(!h->exited());
  BOOST_TEST(a.ask("echo fine\n") == "echo: fine\n\n");
}

BOOST_AUTO_TEST_CASE(silent_and_slow_clients_do_not_block_others) {
  Agent a("idle-timeout = 1\nmax-output = 65536");
  auto h = a.start();
  RawClient silent(a.sock);  // connects, never writes
  BOOST_TEST_REQUIRE(silent.connected);
  RawClient greedy(a.sock);  // asks a lot, never reads
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "help\n";
  BOOST_TEST(write(greedy.fd, many.data(), many.size()) > 0);
  BOOST_TEST(a.ask("echo served\n") == "echo: served\n\n");
  std::string ignored;
  BOOST_TEST(silent.read_until_closed(ignored, 20));  // the idle timeout closed it
  BOOST_TEST(
      wait_until([&] { return h->log().find("does not read its replies") != std::string::npos; }));
  BOOST_TEST(a.ask("echo still\n") == "echo: still\n\n");
}

BOOST_AUTO_TEST_CASE(client_limit) {
  Agent a("max-clients = 2");
  auto h = a.start();
  RawClient c1(a.sock), c2(a.sock);
  BOOST_TEST_REQUIRE((c1.connected && c2.connected));
  BOOST_TEST(wait_until([&] {
    return h->log().find("connected", h->log().find("connected") + 1) != std::string::npos;
  }));
  // The third client only reads: the agent answers and closes at once, and a
  // socat still writing its request would add its own "Broken pipe" line.
  RawClient c3(a.sock);
  std::string refused;
  BOOST_TEST(c3.read_until_closed(refused, 20));
  BOOST_TEST(refused == "ERR: too many clients (limit 2); try again later\n\n");
}

BOOST_AUTO_TEST_CASE(outside_the_group_is_refused) {
  require_nobody();
  Agent a;
  auto h = a.start();
  int st = 0;
  std::string out =
      socat(a.sock, "help\n", "setpriv --reuid=nobody --regid=nogroup --clear-groups ", &st);
  BOOST_TEST(st != 0);
  BOOST_TEST(out.find("Permission denied") != std::string::npos, out);
  BOOST_TEST(h->log().find("uid 65534") == std::string::npos);  // never got in
}

BOOST_AUTO_TEST_CASE(read_only_clients_may_show_not_change) {
  require_nobody();
  Agent a("socket-mode = 0666");
  auto h = a.start();
  const std::string as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
  BOOST_TEST(socat(a.sock, "echo look\n", as_nobody) == "echo: look\n\n");
  BOOST_TEST(socat(a.sock, "set prefix x\n", as_nobody) ==
             "ERR: permission denied: 'set prefix' changes state; it needs root or the control "
             "socket's group\n\n");
  BOOST_TEST(h->log().find("uid 65534 gid 65534 connected read-only") != std::string::npos);
  BOOST_TEST(a.ask("echo same\n") == "echo: same\n\n");  // prefix unchanged
}

BOOST_AUTO_TEST_CASE(group_members_may_change) {
  require_nobody();
  Agent a("socket-group = nogroup");
  auto h = a.start();
  struct stat st {};
  BOOST_TEST_REQUIRE(stat(a.sock.c_str(), &st) == 0);
  BOOST_TEST(st.st_gid == getgrnam("nogroup")->gr_gid);
  const std::string as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
  BOOST_TEST(socat(a.sock, "set prefix g:\n", as_nobody) == "ok\n\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reload)

BOOST_AUTO_TEST_CASE(sighup_good_then_bad_config) {
  Agent a("", "prefix = one:");
  auto h = a.start();
  BOOST_TEST(a.ask("echo x\n") == "one:x\n\n");

  a.write_config("", "prefix = two:");
  h->signal(SIGHUP);
  BOOST_TEST(wait_until([&] { return a.ask("echo x\n") == "two:x\n\n"; }));
  BOOST_TEST(h->log().find("reload: new config in effect") != std::string::npos);

  // A bad host key: nothing changes, the error names file and line.
  a.write_config("colour = red", "prefix = three:");
  h->signal(SIGHUP);
  BOOST_TEST(wait_until([&] { return h->log().find("reload refused") != std::string::npos; }));
  BOOST_TEST(h->log().find(a.conf.string() + ":4: unknown key 'colour'") != std::string::npos);
  BOOST_TEST(a.ask("echo x\n") == "two:x\n\n");

  // A bad plugin key: refused by the plugin's check, before anything changes.
  a.write_config("log-level = debug", "prefix = four:\ntick-ms = never");
  h->signal(SIGHUP);
  BOOST_TEST(wait_until(
      [&] { return h->log().find("tick-ms: 'never' is not a number") != std::string::npos; }));
  BOOST_TEST(a.ask("echo x\n") == "two:x\n\n");
  BOOST_TEST(a.ask("show counters\n").find("reloads 1\n") != std::string::npos);
  BOOST_TEST(!h->exited());
}

BOOST_AUTO_TEST_SUITE_END()
