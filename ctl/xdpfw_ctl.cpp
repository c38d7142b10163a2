// xdpfw-ctl: the `manager` CLI of the seed XDP firewall this project grew
// from (bench/baselines/seed.bpf.c), as a client of the agent's
// control socket:
//   xdpfw-ctl add --action drop|pass [--src A] [--dst A] [--sport P] [--dport P] [--proto P]
//                 [--prio N] [--icmp-type T] [--icmp-code C]
//   xdpfw-ctl del ID | list [--json] | stats [--json] | interfaces [--json]
//   xdpfw-ctl monitor [--append FILE] | replace FILE | check FILE | flush | save [-]
//   xdpfw-ctl reload | raw 'COMMAND'... | help | --help | --version
// Options go anywhere on the line (before or after the command and its
// words); "--" ends them. A word or option a command does not take is bad
// usage. Socket: --socket PATH, else $XDPFW_SOCKET, else /run/xdpfw/xdpfw.sock.
// Exit: 0 ok; 1 the agent answered an error (printed on stderr); 2 bad usage;
// 3 no agent reachable, or the agent went away before its answer was complete
// (for monitor: the event stream ended without Ctrl-C).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "default_paths.hpp"
#include "rule_fields.hpp"

#ifndef XDPFW_VERSION
#error "XDPFW_VERSION must be defined (ctl/CMakeLists.txt passes the project's version)"
#endif

namespace {

// "add --action drop|pass [--prio N] ...": the rule grammar's fields,
// wrapped at 80 columns.
std::string add_usage() {
  std::string out = "  add --action drop|pass|audit", line = out;
  for (const auto& f : xdpfw::rule_field_names) {
    std::string name = f.name;
    if (name == "id" || name == "action") continue;
    std::string word = " [--" + name + (*f.value ? " " : "") + f.value + "]";
    if (line.size() + word.size() > 80) {
      out += "\n     ";
      line = "     ";
    }
    out += word;
    line += word;
  }
  return out + "\n";
}

const std::string usage =
    "usage: xdpfw-ctl [--socket PATH] COMMAND [ARGS]      (options may come anywhere)\n"
    "       xdpfw-ctl --help | --version\n" +
    add_usage() +
    "                                      add a rule, print its id\n"
    "  del ID                              delete a rule\n"
    "  status [--json]                     rules and their source (a refused change), a replace\n"
    "                                      on trial and its time left, interfaces, sets\n"
    "  list [--json]                       the rules with their counters\n"
    "  stats [--json]                      packets by verdict and reason, events\n"
    "  interfaces [--json]                 the links: selected, attached, mode, errors\n"
    "  monitor [--append FILE]             unmatched-packet events, live, as JSON lines\n"
    "  replace FILE                        replace every rule with FILE's, all or nothing\n"
    "  replace --confirm SECONDS FILE      the same, on trial: the previous rules come back\n"
    "                                      unless 'confirm' follows within SECONDS\n"
    "  confirm                             keep the rules of the last replace --confirm\n"
    "  check FILE                          compile FILE's rules and report; nothing changes\n"
    "  flush                               delete every rule\n"
    "  save [-]                            write the rules to the agent's rules file; -: print "
    "them\n"
    "  reload                              have the agent re-read its config (as SIGHUP)\n"
    "  set create NAME [timeout DUR] [max N]   a new address set (DUR: 30s, 10m, 1h, 2d)\n"
    "  set add NAME ADDR[/LEN] [timeout DUR]   add an element (or refresh its timeout)\n"
    "  set del NAME ADDR[/LEN] [if-present]  remove an element (absent: an error\n"
    "                                      unless if-present)\n"
    "  set load NAME FILE                  replace the set's elements with FILE's at once\n"
    "  set flush NAME | set destroy NAME   empty a set | remove a set no rule uses\n"
    "  set list [NAME] [--json]            the sets, or one set's elements\n"
    "  raw 'COMMAND'...                    control commands, one per word, answered in order\n"
    "                                      ('raw help' lists them)\n"
    "Socket: --socket PATH, else $XDPFW_SOCKET, else " +
    std::string(xdpfw::default_socket_path) +
    ".\n"
    "Exit: 0 done; 1 the agent answered an error; 2 bad usage; 3 no agent reachable\n"
    "or the agent went away.\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every option any command takes; which command takes which is below.
struct Flag {
  const char* name;
  bool takes_value;
};
// The rule grammar's fields but the id (the agent gives it), in its order.
const std::vector<std::string> rule_flags = [] {
  std::vector<std::string> f;
  for (const auto& r : xdpfw::rule_field_names)
    if (std::string(r.name) != "id") f.push_back(r.name);
  return f;
}();
const std::vector<Flag> all_flags = [] {
  std::vector<Flag> f = {{"socket", true}, {"help", false},  {"version", false},
                         {"json", false},  {"append", true}, {"confirm", true}};
  for (const auto& r : xdpfw::rule_field_names)
    if (std::string(r.name) != "id") f.push_back({r.name, *r.value != '\0'});
  return f;
}();
const std::vector<std::string> global_flags = {"socket", "help", "version"};

struct Command {
  std::string name;
  std::vector<std::string> flags;  // besides the global ones
  size_t min_words, max_words;
  std::string words;  // what its words are, for messages
};

const std::vector<Command> commands = {
    {"add", rule_flags, 0, 0, "no word, only options"},
    {"del", {}, 1, 1, "one rule id"},
    {"status", {"json"}, 0, 0, "no word"},
    {"list", {"json"}, 0, 0, "no word"},
    {"stats", {"json"}, 0, 0, "no word"},
    {"interfaces", {"json"}, 0, 0, "no word"},
    {"monitor", {"append"}, 0, 0, "no word"},
    {"replace", {"confirm"}, 1, 1, "one rules file"},
    {"confirm", {}, 0, 0, "no word"},
    {"check", {}, 1, 1, "one rules file"},
    {"flush", {}, 0, 0, "no word"},
    {"save", {}, 0, 1, "nothing or -"},
    {"reload", {}, 0, 0, "no word"},
    {"set", {"json"}, 1, 6, "create, add, del, load, flush, destroy or list, then its words"},
    {"raw", {}, 1, SIZE_MAX, "one or more quoted commands, e.g. raw 'show interfaces'"},
    {"help", {}, 0, 0, "no word"},
};

std::string command_names() {
  std::string s;
  for (const Command& c : commands) s += (s.empty() ? "" : ", ") + c.name;
  return s;
}

struct Line {
  std::map<std::string, std::string> opts;  // "--json" is ("json", "")
  std::vector<std::string> words;           // the command first
};

Line parse_line(const std::vector<std::string>& args) {
  Line l;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      l.words.push_back(a);  // "-" alone is a word (save -)
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h") {
      l.opts["help"] = "";
      continue;
    }
    if (a[1] != '-') throw UsageError("unrecognised option '" + a + "'");
    size_t eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    auto f = std::find_if(all_flags.begin(), all_flags.end(),
                          [&](const Flag& x) { return name == x.name; });
    if (f == all_flags.end()) throw UsageError("unrecognised option '--" + name + "'");
    std::string value;
    if (f->takes_value) {
      if (eq != std::string::npos)
        value = a.substr(eq + 1);
      else if (i + 1 < args.size())
        value = args[++i];
      else
        throw UsageError("option '--" + name + "' needs a value");
    } else if (eq != std::string::npos) {
      throw UsageError("option '--" + name + "' takes no value");
    }
    if (!l.opts.emplace(name, value).second)
      throw UsageError("option '--" + name + "' given twice");
  }
  return l;
}

// The command's options and words, or a UsageError that says what it takes.
const Command& check_line(const Line& l) {
  const std::string& name = l.words[0];
  auto c = std::find_if(commands.begin(), commands.end(),
                        [&](const Command& x) { return x.name == name; });
  if (c == commands.end())
    throw UsageError("'" + name + "' is not a command (expected " + command_names() + ")");
  for (const auto& [opt, value] : l.opts) {
    if (std::find(global_flags.begin(), global_flags.end(), opt) != global_flags.end()) continue;
    if (std::find(c->flags.begin(), c->flags.end(), opt) != c->flags.end()) continue;
    std::string takes;
    for (const std::string& f : c->flags) takes += (takes.empty() ? "--" : ", --") + f;
    throw UsageError(name + ": unexpected option '--" + opt + "' (" + name + " takes " +
                     (takes.empty() ? "no option" : takes) + ")");
  }
  size_t n = l.words.size() - 1;
  if (n > c->max_words)
    throw UsageError(name + ": unexpected '" + l.words[1 + c->max_words] + "' (expected " +
                     c->words + ")");
  if (n < c->min_words) throw UsageError(name + ": expected " + c->words);
  return *c;
}

int connect_agent(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    std::fprintf(stderr, "xdpfw-ctl: socket path too long: %s\n", path.c_str());
    std::exit(2);
  }
  std::memcpy(a.sun_path, path.c_str(), path.size());
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    if (e == ENOENT || e == ECONNREFUSED)
      std::fprintf(stderr,
                   "xdpfw-ctl: no agent listening on %s (is xdpfw-host running? --socket "
                   "or XDPFW_SOCKET name another socket)\n",
                   path.c_str());
    else if (e == EACCES || e == EPERM)
      std::fprintf(stderr,
                   "xdpfw-ctl: not allowed to use %s (%s): run as root or as a member "
                   "of the socket's group\n",
                   path.c_str(), std::strerror(e));
    else
      std::fprintf(stderr, "xdpfw-ctl: cannot connect to %s: %s\n", path.c_str(), std::strerror(e));
    std::exit(3);
  }
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "xdpfw-ctl: the agent went away: it closed the connection\n");
      std::exit(3);
    }
    off += size_t(n);
  }
}

// Sends the requests (each one line, or a line with its payload), reads
// until the agent closes, and reports each reply: errors on stderr, the rest
// on stdout (an empty line between replies when there are several).
int request(const std::string& sock, const std::vector<std::string>& requests) {
  int fd = connect_agent(sock);
  std::string text;
  for (const std::string& r : requests) text += r + "\n";
  send_all(fd, text);
  shutdown(fd, SHUT_WR);
  std::string in;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // an error (a reset) ends the answer as EOF does
    in.append(buf, size_t(n));
  }
  close(fd);
  // Every reply ends with an empty line and holds none of its own.
  std::vector<std::string> replies;
  std::string current;
  size_t pos = 0, nl;
  while ((nl = in.find('\n', pos)) != std::string::npos) {
    if (nl == pos) {
      replies.push_back(current);
      current.clear();
    } else {
      current.append(in, pos, nl + 1 - pos);
    }
    pos = nl + 1;
  }
  current.append(in, pos);
  int rc = 0;
  bool printed = false;
  for (const std::string& reply : replies) {
    if (reply.rfind("ERR", 0) == 0) {
      std::fprintf(stderr, "xdpfw-ctl: %s",
                   reply.substr(reply.rfind("ERR: ", 0) == 0 ? 5 : 0).c_str());
      rc = 1;
    } else {
      if (printed) std::fputs("\n", stdout);
      std::fputs(reply.c_str(), stdout);
      printed = true;
    }
  }
  if (!current.empty() || replies.size() < requests.size()) {
    if (!current.empty()) std::fputs(current.c_str(), stdout);
    std::fflush(stdout);
    std::fprintf(stderr,
                 "xdpfw-ctl: the agent went away: it closed the connection after %zu of %zu "
                 "%s%s\n",
                 replies.size(), requests.size(), requests.size() == 1 ? "reply" : "replies",
                 current.empty() ? "" : " and part of the next");
    return 3;
  }
  return rc;
}

// "COMMAND <<TAG", FILE's lines, "TAG": a tag that is no line of the file,
// so blank lines and comments go through whole.
std::string with_file(const std::string& command, const std::string& file) {
  std::ifstream in(file);
  if (!in) throw UsageError("cannot read " + file + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  std::string tag = "XDPFW_END";
  for (int i = 0; text.find(tag + "\n") != std::string::npos; ++i)
    tag = "XDPFW_END_" + std::to_string(i);
  return command + " <<" + tag + "\n" + text + tag;
}

volatile sig_atomic_t g_stop = 0;
int g_wake[2] = {-1, -1};  // the signal handler writes here: poll wakes up

int monitor(const std::string& sock, const std::string& append) {
  std::ofstream out;
  if (!append.empty()) {
    out.open(append, std::ios::app);
    if (!out) {
      std::fprintf(stderr, "xdpfw-ctl: cannot append to %s: %s\n", append.c_str(),
                   std::strerror(errno));
      return 1;
    }
  }
  if (pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "xdpfw-ctl: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    int e = errno;
    g_stop = 1;
    [[maybe_unused]] ssize_t n = write(g_wake[1], "x", 1);
    errno = e;
  };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int fd = connect_agent(sock);
  send_all(fd, "show events\n");  // the write side stays open: that keeps the stream
  std::string pending;
  char buf[65536];
  bool first = true;
  while (!g_stop) {
    pollfd p[2] = {{fd, POLLIN, 0}, {g_wake[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "xdpfw-ctl: poll: %s\n", std::strerror(errno));
      return 1;
    }
    if (g_stop) break;
    if (!p[0].revents) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the agent closed the stream (or reset it)
    pending.append(buf, size_t(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (first && line.rfind("ERR", 0) == 0) {
        std::fprintf(stderr, "xdpfw-ctl: %s\n",
                     line.substr(line.rfind("ERR: ", 0) == 0 ? 5 : 0).c_str());
        return 1;
      }
      first = false;
      if (line.empty()) continue;
      if (out.is_open())
        out << line << "\n" << std::flush;
      else
        std::printf("%s\n", line.c_str()), std::fflush(stdout);
    }
  }
  close(fd);
  if (g_stop) return 0;  // Ctrl-C or SIGTERM: the way to end it
  std::fprintf(stderr, "xdpfw-ctl: the agent went away: the event stream from %s ended\n",
               sock.c_str());
  return 3;
}

std::string rule_from_flags(const std::map<std::string, std::string>& opts) {
  if (!opts.count("action")) throw UsageError("add: --action drop|pass|audit is required");
  std::string rule;
  for (const auto& f : xdpfw::rule_field_names) {
    std::string k = f.name;
    if (k == "id" || !opts.count(k)) continue;
    rule += (rule.empty() ? "" : " ") + k;
    if (*f.value) rule += " " + opts.at(k);  // a flag (log) has no value
  }
  return rule;
}

// "set SUB WORDS...": the agent's "set SUB" command; "set load NAME FILE"
// sends FILE as its payload.
int set_command(const std::string& sock, const std::vector<std::string>& words, bool json) {
  struct Sub {
    const char* name;
    size_t min, max;  // words after the subcommand
    const char* usage;
  };
  static const Sub subs[] = {
      {"create", 1, 5, "set create NAME [timeout DUR] [max N]"},
      {"add", 2, 4, "set add NAME ADDR[/LEN] [timeout DUR]"},
      {"del", 2, 3, "set del NAME ADDR[/LEN] [if-present]"},
      {"load", 2, 2, "set load NAME FILE"},
      {"flush", 1, 1, "set flush NAME"},
      {"destroy", 1, 1, "set destroy NAME"},
      {"list", 0, 1, "set list [NAME] [--json]"},
  };
  const std::string& sub = words[0];
  const Sub* s =
      std::find_if(std::begin(subs), std::end(subs), [&](const Sub& x) { return sub == x.name; });
  if (s == std::end(subs))
    throw UsageError("set: '" + sub +
                     "' is not a set command (expected create, add, del, load, flush, destroy "
                     "or list)");
  size_t n = words.size() - 1;
  if (n < s->min || n > s->max) throw UsageError("set " + sub + ": usage: " + s->usage);
  if (json && sub != "list") throw UsageError("set " + sub + ": --json is for set list only");
  if (sub == "load") return request(sock, {with_file("set load " + words[1], words[2])});
  std::string line = "set";
  for (const std::string& w : words) line += " " + w;
  if (json) line += " json";
  return request(sock, {line});
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    Line l = parse_line(args);
    if (l.opts.count("help")) {
      std::fputs(usage.c_str(), stdout);
      return 0;
    }
    if (l.opts.count("version")) {
      std::printf("xdpfw-ctl %s\n", XDPFW_VERSION);
      return 0;
    }
    if (l.words.empty()) {
      std::fputs(usage.c_str(), stderr);
      return 2;
    }
    const Command& c = check_line(l);
    const std::string& cmd = c.name;
    std::vector<std::string> words(l.words.begin() + 1, l.words.end());
    bool json = l.opts.count("json");
    std::string sock = l.opts.count("socket")        ? l.opts["socket"]
                       : std::getenv("XDPFW_SOCKET") ? std::getenv("XDPFW_SOCKET")
                                                     : xdpfw::default_socket_path;
    if (cmd == "help") {
      std::fputs(usage.c_str(), stdout);
      return 0;
    }
    if (cmd == "add") return request(sock, {"rule add " + rule_from_flags(l.opts)});
    if (cmd == "del") return request(sock, {"rule del " + words[0]});
    if (cmd == "status") return request(sock, {json ? "show status json" : "show status"});
    if (cmd == "list") return request(sock, {json ? "rule list json" : "rule list"});
    if (cmd == "stats") return request(sock, {json ? "show stats json" : "show stats"});
    if (cmd == "interfaces")
      return request(sock, {json ? "show interfaces json" : "show interfaces"});
    if (cmd == "monitor") return monitor(sock, l.opts.count("append") ? l.opts["append"] : "");
    if (cmd == "replace" && l.opts.count("confirm")) {
      const std::string& s = l.opts["confirm"];
      if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError("replace: --confirm takes a number of seconds, got '" + s + "'");
      return request(sock, {with_file("rule replace confirm " + s, words[0])});
    }
    if (cmd == "replace" || cmd == "check")
      return request(sock, {with_file("rule " + cmd, words[0])});
    if (cmd == "confirm") return request(sock, {"rule confirm"});
    if (cmd == "flush") return request(sock, {"rule flush"});
    if (cmd == "save") {
      if (!words.empty() && words[0] != "-")
        throw UsageError("save: unexpected '" + words[0] + "' (expected nothing or -)");
      return request(sock, {words.empty() ? "save" : "save -"});
    }
    if (cmd == "reload") return request(sock, {"reload"});
    if (cmd == "set") return set_command(sock, words, json);
    if (cmd == "raw") {
      for (const std::string& w : words)
        if (w.find_first_not_of(" \t\r\n") == std::string::npos)
          throw UsageError("raw: an empty command (expected " + c.words + ")");
      return request(sock, words);
    }
    throw UsageError("'" + cmd + "' is not a command (expected " + command_names() + ")");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "xdpfw-ctl: %s\n%s", e.what(), usage.c_str());
    return 2;
  }
}
