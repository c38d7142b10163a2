// Command line and config file: the command line wins; every bad key or
// value is an error naming the file and line.
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <fstream>

#include "host_config.hpp"

using namespace xdpfw::host;

namespace {
std::string ini_error(const std::string& text) {
  try {
    HostConfig cfg;
    for (const auto& s : parse_ini("x.conf", text))
      if (s.name == "host") apply_host_section(cfg, "x.conf", s);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
CommandLine cli(std::vector<const char*> args) {
  args.insert(args.begin(), "xdpfw-host");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}
std::string cli_error(std::vector<const char*> args) {
  try {
    cli(args);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

BOOST_AUTO_TEST_SUITE(host_config)

BOOST_AUTO_TEST_CASE(ini_sections_and_lines) {
  auto s = parse_ini("x.conf",
                     "# comment\nsocket = /run/a.sock\n\n[plugin.echo]\nprefix = a b \n; c\n"
                     "[host]\nlog-level = debug\n");
  BOOST_TEST_REQUIRE(s.size() == 2u);
  BOOST_TEST(s[0].name == "host");
  BOOST_TEST(s[0].entries.size() == 2u);
  BOOST_TEST(s[0].entries[1].line == 8u);
  BOOST_TEST(s[1].name == "plugin.echo");
  BOOST_TEST(s[1].entries[0].value == "a b");
  BOOST_TEST(s[1].entries[0].line == 5u);
}

BOOST_AUTO_TEST_CASE(errors_name_file_and_line) {
  struct {
    const char* text;
    const char* expect;
  } cases[] = {
      {"[host]\ncolour = red\n", "x.conf:2: unknown key 'colour' in [host]"},
      {"max-clients = lots\n", "x.conf:1: max-clients: 'lots' is not a number 1-100000"},
      {"\n\nmax-clients = 0\n", "x.conf:3: max-clients: '0' is not a number"},
      {"max-clients-per-uid = 0\n", "x.conf:1: max-clients-per-uid: '0' is not a number 1-100000"},
      {"max-memory = 1024\n", "x.conf:1: max-memory: '1024' is not a number 1048576-"},
      {"socket-mode = 0999\n", "x.conf:1: socket-mode: '0999' is not a number 0-511 in octal"},
      {"socket = relative.sock\n", "x.conf:1: socket: 'relative.sock' is not an absolute path"},
      {"log-level = loud\n", "x.conf:1: log-level: 'loud' is not a log level"},
      {"idle-timeout = -1\n", "x.conf:1: idle-timeout: '-1' is not a number"},
      {"[hosts]\n", "x.conf:1: unknown section [hosts]"},
      {"[plugin.]\n", "x.conf:1: unknown section [plugin.]"},
      {"[host\n", "x.conf:1: section header '[host' lacks its closing ']'"},
      {"just words\n", "x.conf:1: 'just words' is not 'key = value'"},
      {"[plugin.a]\n[plugin.a]\n", "x.conf:2: section [plugin.a] appears twice (first at line 1)"},
      {"= 3\n", "x.conf:1: a value without a key"},
  };
  for (const auto& c : cases) {
    std::string err = ini_error(c.text);
    BOOST_TEST_INFO("config: " << c.text << " gave: " << err);
    BOOST_TEST(err.find(c.expect) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(values_are_applied) {
  HostConfig cfg;
  for (const auto& s : parse_ini("x.conf",
                                 "plugin = /a.so\nplugin = /b.so\nsocket-mode = 0600\n"
                                 "socket-group = adm\nmax-line = 1024\nidle-timeout = 9\n"
                                 "max-memory = 2097152\nmax-clients-per-uid = 7\n"))
    apply_host_section(cfg, "x.conf", s);
  BOOST_TEST(cfg.limits.max_memory == 2097152u);
  BOOST_TEST(cfg.plugins == (std::vector<std::string>{"/a.so", "/b.so"}));
  BOOST_TEST(cfg.socket_mode == 0600u);
  BOOST_TEST(cfg.socket_group == "adm");
  BOOST_TEST(cfg.limits.max_line == 1024u);
  BOOST_TEST(cfg.limits.idle_timeout_s == 9u);
  BOOST_TEST(cfg.limits.max_clients_per_uid == 7u);
  BOOST_TEST(HostConfig{}.limits.max_clients_per_uid == 64u);
}

BOOST_AUTO_TEST_CASE(metrics_listen) {
  auto parsed = [](const std::string& text) {
    HostConfig cfg;
    for (const auto& s : parse_ini("x.conf", text)) apply_host_section(cfg, "x.conf", s);
    return cfg.metrics_listen;
  };
  BOOST_TEST(!parsed("socket-mode = 0600\n"));  // off by default
  BOOST_TEST(!parsed("metrics-listen = none\n"));
  BOOST_TEST(!parsed("metrics-listen = 127.0.0.1:1\nmetrics-listen =\n"));
  auto v4 = parsed("metrics-listen = 127.0.0.1:9477\n");
  BOOST_TEST_REQUIRE(!!v4);
  BOOST_TEST(v4->address == "127.0.0.1");
  BOOST_TEST(v4->port == 9477u);
  BOOST_TEST(v4->text() == "127.0.0.1:9477");
  BOOST_TEST(v4->where == "x.conf:1: ");
  auto v6 = parsed("\nmetrics-listen = [::1]:65535\n");
  BOOST_TEST_REQUIRE(!!v6);
  BOOST_TEST(v6->address == "::1");
  BOOST_TEST(v6->port == 65535u);
  BOOST_TEST(v6->text() == "[::1]:65535");
  BOOST_TEST(v6->where == "x.conf:2: ");
  BOOST_TEST(parsed("metrics-listen = [::]:9477\n")->address == "::");
  struct {
    const char* text;
    const char* expect;
  } cases[] = {
      {"metrics-listen = 127.0.0.1\n", "x.conf:1: metrics-listen: '127.0.0.1': no port"},
      {"metrics-listen = 127.0.0.1:\n", "x.conf:1: metrics-listen: '127.0.0.1:': no port"},
      {"\nmetrics-listen = localhost:9477\n",
       "x.conf:2: metrics-listen: 'localhost:9477': 'localhost' is not a numeric IPv4 address "
       "(expected ADDRESS:PORT with a numeric IPv4 address or a bracketed IPv6 one"},
      {"metrics-listen = 127.0.0.1:0\n",
       "x.conf:1: metrics-listen: '127.0.0.1:0': port '0' is "
       "not a number 1-65535"},
      {"metrics-listen = 127.0.0.1:65536\n", "x.conf:1: metrics-listen: '127.0.0.1:65536': port"},
      {"metrics-listen = 127.0.0.1:94x\n", "x.conf:1: metrics-listen: '127.0.0.1:94x': port"},
      {"metrics-listen = ::1:9477\n",
       "x.conf:1: metrics-listen: '::1:9477': an IPv6 address goes in brackets"},
      {"metrics-listen = [::1]\n", "x.conf:1: metrics-listen: '[::1]': no port"},
      {"metrics-listen = [::1:9477\n", "x.conf:1: metrics-listen: '[::1:9477': no closing ']'"},
      {"metrics-listen = [127.0.0.1]:9477\n",
       "x.conf:1: metrics-listen: '[127.0.0.1]:9477': '127.0.0.1' is not a numeric IPv6 address"},
      {"metrics-listen = 300.0.0.1:9477\n",
       "x.conf:1: metrics-listen: '300.0.0.1:9477': "
       "'300.0.0.1' is not a numeric IPv4 address"},
  };
  for (const auto& c : cases) {
    std::string err = ini_error(c.text);
    BOOST_TEST_INFO("config: " << c.text << " gave: " << err);
    BOOST_TEST(err.find(c.expect) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(command_line_wins) {
  char path[] = "/tmp/xdpfw-host-config-XXXXXX";
  int fd = mkstemp(path);
  BOOST_TEST_REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "plugin = /from/config.so\nsocket = /run/cfg.sock\nlog-level = warn\n"
                         "[plugin.echo]\nprefix = p\n";
  CommandLine c =
      cli({"--config", path, "--plugin", "/a.so", "-p", "/b.so", "--log-level", "debug"});
  HostConfig cfg = load_config(c);
  std::remove(path);
  BOOST_TEST(cfg.plugins == (std::vector<std::string>{"/a.so", "/b.so"}));
  BOOST_TEST(cfg.socket_path == "/run/cfg.sock");  // not on the command line
  BOOST_TEST((cfg.log_level == LogLevel::debug));
  BOOST_TEST(cfg.plugin_sections.at("echo").entries.at(0).value == "p");
}

BOOST_AUTO_TEST_CASE(command_line_errors) {
  BOOST_TEST(cli_error({"--colour"}).find("command line: unrecognised option '--colour'") == 0u);
  BOOST_TEST(cli_error({"--plugin"}).find("command line:") == 0u);
  BOOST_TEST(cli_error({"--log-level", "loud"}).find("command line: --log-level: 'loud'") == 0u);
  BOOST_TEST(cli_error({"--socket", "x.sock"}).find("command line: --socket 'x.sock'") == 0u);
  BOOST_TEST((cli({"--check-config"}).action == CommandLine::Action::check_config));
  BOOST_TEST((cli({"--help"}).action == CommandLine::Action::help));
  BOOST_TEST(cli({"--help"}).help_text.find("--plugin") != std::string::npos);
  try {
    load_config(cli({"--config", "/nonexistent/xdpfw.conf"}));
    BOOST_FAIL("a missing config file was accepted");
  } catch (const ConfigError& e) {
    BOOST_TEST(std::string(e.what()) == "/nonexistent/xdpfw.conf: cannot read the config file");
  }
}

BOOST_AUTO_TEST_SUITE_END()
