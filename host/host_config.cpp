// host_config.cpp: INI parsing, option parsing, validation.
#include "host_config.hpp"

#include "text.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <boost/program_options.hpp>
#include <charconv>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace xdpfw::host {
namespace {

std::string where(const std::string& file, unsigned line) {
  return (file.empty() ? std::string("<config>") : file) + ":" + std::to_string(line) + ": ";
}

uint64_t parse_number(const std::string& file, const IniEntry& e, uint64_t min, uint64_t max,
                      int base = 10) {
  uint64_t v = 0;
  const char* b = e.value.data();
  const char* end = b + e.value.size();
  auto [p, ec] = std::from_chars(b, end, v, base);
  if (e.value.empty() || ec != std::errc() || p != end || v < min || v > max)
    throw ConfigError(where(file, e.line) + e.key + ": '" + e.value + "' is not a number " +
                      std::to_string(min) + "-" + std::to_string(max) +
                      (base == 8 ? " in octal" : ""));
  return v;
}

}  // namespace

std::string ListenAddress::text() const {
  return address.find(':') == std::string::npos ? address + ":" + std::to_string(port)
                                                : "[" + address + "]:" + std::to_string(port);
}

std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string& error) {
  const std::string expected =
      " (expected ADDRESS:PORT with a numeric IPv4 address or a bracketed IPv6 one, e.g. "
      "127.0.0.1:9477 or [::1]:9477, or 'none')";
  bool v6 = !text.empty() && text.front() == '[';
  size_t colon = v6 ? text.find(']') : text.rfind(':');
  if (v6 && colon != std::string_view::npos)
    colon = colon + 1 < text.size() && text[colon + 1] == ':' ? colon + 1 : text.npos;
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    error = (v6 && text.find(']') == text.npos ? "no closing ']'" : "no port") + expected;
    return std::nullopt;
  }
  std::string host(v6 ? text.substr(1, colon - 2) : text.substr(0, colon));
  std::string_view port = text.substr(colon + 1);
  unsigned char buf[sizeof(in6_addr)];
  if (!v6 && host.find(':') != std::string::npos) {
    error = "an IPv6 address goes in brackets" + expected;
    return std::nullopt;
  }
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1) {
    error = "'" + host + "' is not a numeric " + (v6 ? "IPv6" : "IPv4") + " address" + expected;
    return std::nullopt;
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) {
    error = "port '" + std::string(port) + "' is not a number 1-65535";
    return std::nullopt;
  }
  return ListenAddress{host, static_cast<uint16_t>(p), ""};
}

std::vector<IniSection> parse_ini(const std::string& path, std::string_view text) {
  std::vector<IniSection> out;
  out.push_back(IniSection{"host", 0, {}});
  size_t current = 0;
  unsigned lineno = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    std::string_view line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      if (line.back() != ']')
        throw ConfigError(where(path, lineno) + "section header '" + std::string(line) +
                          "' lacks its closing ']'");
      std::string name(trim(line.substr(1, line.size() - 2)));
      if (name != "host" && (!name.starts_with("plugin.") || name.size() == 7))
        throw ConfigError(where(path, lineno) + "unknown section [" + name +
                          "] (expected [host] or [plugin.NAME])");
      for (const auto& s : out)
        if (s.name == name && s.line != 0)
          throw ConfigError(where(path, lineno) + "section [" + name +
                            "] appears twice (first at line " + std::to_string(s.line) + ")");
      if (name == "host") {
        out[0].line = lineno;  // keys before any header were [host]'s already
        current = 0;
      } else {
        out.push_back(IniSection{name, lineno, {}});
        current = out.size() - 1;
      }
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      throw ConfigError(where(path, lineno) + "'" + std::string(line) +
                        "' is not 'key = value' nor a [section]");
    std::string key(trim(line.substr(0, eq)));
    std::string value(trim(line.substr(eq + 1)));
    if (key.empty()) throw ConfigError(where(path, lineno) + "a value without a key");
    out[current].entries.push_back(IniEntry{key, value, lineno});
  }
  return out;
}

void apply_host_section(HostConfig& cfg, const std::string& file, const IniSection& s) {
  bool plugins_seen = false;
  for (const IniEntry& e : s.entries) {
    if (e.key == "plugin") {
      if (!plugins_seen) cfg.plugins.clear();
      plugins_seen = true;
      if (e.value.empty()) throw ConfigError(where(file, e.line) + "plugin: a path is expected");
      cfg.plugins.push_back(e.value);
    } else if (e.key == "socket") {
      if (e.value.empty() || e.value[0] != '/')
        throw ConfigError(where(file, e.line) + "socket: '" + e.value +
                          "' is not an absolute path");
      if (e.value.size() >= 108)
        throw ConfigError(where(file, e.line) + "socket: path longer than 107 bytes");
      cfg.socket_path = e.value;
    } else if (e.key == "socket-group") {
      cfg.socket_group = e.value;
    } else if (e.key == "socket-mode") {
      cfg.socket_mode = static_cast<mode_t>(parse_number(file, e, 0, 0777, 8));
    } else if (e.key == "log-level") {
      try {
        cfg.log_level = parse_log_level(e.value);
      } catch (const std::invalid_argument& err) {
        throw ConfigError(where(file, e.line) + "log-level: " + err.what());
      }
    } else if (e.key == "max-clients") {
      cfg.limits.max_clients = parse_number(file, e, 1, 100000);
    } else if (e.key == "max-clients-per-uid") {
      cfg.limits.max_clients_per_uid = parse_number(file, e, 1, 100000);
    } else if (e.key == "max-line") {
      cfg.limits.max_line = parse_number(file, e, 256, 64 << 20);
    } else if (e.key == "max-payload") {
      cfg.limits.max_payload = parse_number(file, e, 0, 1ull << 30);
    } else if (e.key == "idle-timeout") {
      cfg.limits.idle_timeout_s = static_cast<unsigned>(parse_number(file, e, 1, 86400));
    } else if (e.key == "netlink-rcvbuf") {
      cfg.netlink_rcvbuf = parse_number(file, e, 1, 1ull << 30);
    } else if (e.key == "max-output") {
      cfg.limits.max_output = parse_number(file, e, 4096, 1ull << 32);
    } else if (e.key == "max-memory") {
      cfg.limits.max_memory = parse_number(file, e, 1 << 20, 1ull << 36);
    } else if (e.key == "metrics-listen") {
      cfg.metrics_listen.reset();
      if (e.value.empty() || e.value == "none") continue;
      std::string error;
      cfg.metrics_listen = parse_listen_address(e.value, error);
      if (!cfg.metrics_listen)
        throw ConfigError(where(file, e.line) + "metrics-listen: '" + e.value + "': " + error);
      cfg.metrics_listen->where = where(file, e.line);
    } else {
      throw ConfigError(where(file, e.line) + "unknown key '" + e.key +
                        "' in [host] (expected plugin, socket, socket-group, socket-mode, "
                        "log-level, max-clients, max-clients-per-uid, max-line, max-payload, "
                        "max-output, max-memory, "
                        "idle-timeout, netlink-rcvbuf, metrics-listen)");
    }
  }
}

CommandLine parse_command_line(int argc, const char* const* argv) {
  po::options_description desc("xdpfw-host options");
  desc.add_options()("help,h", "show this help and exit")("version", "show the version and exit")(
      "config,c", po::value<std::string>(), "INI config file ([host] and [plugin.NAME] sections)")(
      "plugin,p", po::value<std::vector<std::string>>(),
      "plugin to load (repeatable; replaces the config's list)")(
      "socket,s", po::value<std::string>(), "control socket path")(
      "log-level,l", po::value<std::string>(), "error, warn, info or debug")(
      "check-config", "validate the config and the plugins' sections, report, exit");
  CommandLine cli;
  std::ostringstream help;
  help << "usage: xdpfw-host [--config FILE] [--plugin PATH]... [--socket PATH] "
          "[--log-level LEVEL] [--check-config]\n\n"
       << desc;
  cli.help_text = help.str();
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string("command line: ") + e.what() + " (see --help)");
  }
  if (vm.count("help"))
    cli.action = CommandLine::Action::help;
  else if (vm.count("version"))
    cli.action = CommandLine::Action::version;
  else if (vm.count("check-config"))
    cli.action = CommandLine::Action::check_config;
  if (vm.count("config")) cli.config_file = vm["config"].as<std::string>();
  if (vm.count("plugin")) cli.plugins = vm["plugin"].as<std::vector<std::string>>();
  if (vm.count("socket")) {
    cli.socket_path = vm["socket"].as<std::string>();
    if (cli.socket_path->empty() || (*cli.socket_path)[0] != '/' || cli.socket_path->size() >= 108)
      throw ConfigError("command line: --socket '" + *cli.socket_path +
                        "' is not an absolute path of at most 107 bytes");
  }
  if (vm.count("log-level")) {
    try {
      cli.log_level = parse_log_level(vm["log-level"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("command line: --log-level: ") + e.what());
    }
  }
  return cli;
}

HostConfig load_config(const CommandLine& cli) {
  HostConfig cfg;
  if (cli.config_file) {
    cfg.config_file = *cli.config_file;
    std::ifstream in(cfg.config_file);
    if (!in) throw ConfigError(cfg.config_file + ": cannot read the config file");
    std::stringstream ss;
    ss << in.rdbuf();
    for (const IniSection& s : parse_ini(cfg.config_file, ss.str())) {
      if (s.name == "host")
        apply_host_section(cfg, cfg.config_file, s);
      else
        cfg.plugin_sections[s.name.substr(7)] = s;
    }
  }
  if (!cli.plugins.empty()) cfg.plugins = cli.plugins;
  if (cli.socket_path) cfg.socket_path = *cli.socket_path;
  if (cli.log_level) cfg.log_level = *cli.log_level;
  return cfg;
}

}  // namespace xdpfw::host
