// xdpfw-ctl: the original design's "manager", as a client of the agent's
// control socket:
//   xdpfw-ctl add --src A --dst A --sport P --dport P --proto P --action drop|pass [--prio N]
//   xdpfw-ctl del ID | list [--json] | stats [--json] | monitor [--append FILE]
//   xdpfw-ctl replace FILE | check FILE | flush | save [-]
//   xdpfw-ctl raw 'any control command'
// Socket: --socket PATH, else $XDPFW_SOCKET, else /run/xdpfw/xdpfw.sock.
// Exit: 0 ok; 1 the agent answered an error (printed on stderr); 2 bad usage;
// 3 no agent reachable.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace po = boost::program_options;

namespace {

constexpr const char* default_socket = "/run/xdpfw/xdpfw.sock";

const char* usage =
    "usage: xdpfw-ctl [--socket PATH] COMMAND [ARGS]\n"
    "  add --action drop|pass [--src A[/N]] [--dst A[/N]] [--proto P] [--sport P[-P]]\n"
    "      [--dport P[-P]] [--prio N]      add a rule, print its id\n"
    "  del ID                              delete a rule\n"
    "  list [--json]                       the rules with their counters\n"
    "  stats [--json]                      packets by verdict and reason, events\n"
    "  monitor [--append FILE]             unmatched-packet events, live, as JSON lines\n"
    "  replace FILE                        replace every rule with FILE's, all or nothing\n"
    "  check FILE                          compile FILE's rules and report; nothing changes\n"
    "  flush                               delete every rule\n"
    "  save [-]                            write the rules to the agent's rules file; -: print "
    "them\n"
    "  raw 'COMMAND'                       any control command ('raw help' lists them)\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) {
      std::fprintf(stderr, "xdpfw-ctl: the agent closed the connection\n");
      std::exit(3);
    }
    off += size_t(n);
  }
}

// One request, its reply up to the empty line that ends it.
int request(const std::string& sock, const std::string& line) {
  int fd = connect_agent(sock);
  send_all(fd, line + "\n");
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) reply.append(buf, size_t(n));
  close(fd);
  while (reply.ends_with("\n\n")) reply.pop_back();
  if (reply.rfind("ERR: ", 0) == 0) {
    std::fprintf(stderr, "xdpfw-ctl: %s", reply.substr(5).c_str());
    return 1;
  }
  std::fputs(reply.c_str(), stdout);
  return 0;
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
  // No SA_RESTART: a signal must interrupt the blocking read.
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int fd = connect_agent(sock);
  send_all(fd, "show events\n");  // the write side stays open: that keeps the stream
  std::string pending;
  char buf[65536];
  bool first = true;
  while (!g_stop) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, size_t(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (first && line.rfind("ERR: ", 0) == 0) {
        std::fprintf(stderr, "xdpfw-ctl: %s\n", line.substr(5).c_str());
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
  return 0;
}

std::string rule_from_flags(const std::vector<std::string>& args) {
  po::options_description d("add");
  d.add_options()("src", po::value<std::string>())("dst", po::value<std::string>())(
      "sport", po::value<std::string>())("dport", po::value<std::string>())(
      "proto", po::value<std::string>())("action", po::value<std::string>())(
      "prio", po::value<std::string>())("icmp-type", po::value<std::string>())(
      "icmp-code", po::value<std::string>());
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(d).run(), vm);
  if (!vm.count("action")) throw UsageError("add: --action drop|pass is required");
  std::string rule;
  for (const char* k :
       {"prio", "src", "dst", "proto", "sport", "dport", "icmp-type", "icmp-code", "action"})
    if (vm.count(k))
      rule += std::string(rule.empty() ? "" : " ") + k + " " + vm[k].as<std::string>();
  return rule;
}

bool json_flag(const std::vector<std::string>& args, const char* cmd) {
  if (args.empty()) return false;
  if (args.size() == 1 && args[0] == "--json") return true;
  throw UsageError(std::string(cmd) + ": expected nothing or --json");
}

}  // namespace

int main(int argc, char** argv) {
  std::string sock = std::getenv("XDPFW_SOCKET") ? std::getenv("XDPFW_SOCKET") : default_socket;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 2 && args[0] == "--socket") {
      sock = args[1];
      args.erase(args.begin(), args.begin() + 2);
    } else if (!args.empty() && args[0].rfind("--socket=", 0) == 0) {
      sock = args[0].substr(9);
      args.erase(args.begin());
    }
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      std::fputs(usage, args.empty() ? stderr : stdout);
      return args.empty() ? 2 : 0;
    }
    std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "add") return request(sock, "rule add " + rule_from_flags(args));
    if (cmd == "del") {
      if (args.size() != 1) throw UsageError("del: expected one rule id");
      return request(sock, "rule del " + args[0]);
    }
    if (cmd == "list")
      return request(sock, json_flag(args, "list") ? "rule list json" : "rule list");
    if (cmd == "stats")
      return request(sock, json_flag(args, "stats") ? "show stats json" : "show stats");
    if (cmd == "monitor") {
      std::string append;
      if (args.size() == 2 && args[0] == "--append")
        append = args[1];
      else if (!args.empty())
        throw UsageError("monitor: expected nothing or --append FILE");
      return monitor(sock, append);
    }
    if (cmd == "replace" || cmd == "check") {
      if (args.size() != 1) throw UsageError(cmd + ": expected one rules file");
      return request(sock, with_file("rule " + cmd, args[0]));
    }
    if (cmd == "flush") {
      if (!args.empty()) throw UsageError("flush: takes no argument");
      return request(sock, "rule flush");
    }
    if (cmd == "save") {
      if (args.size() > 1 || (args.size() == 1 && args[0] != "-"))
        throw UsageError("save: expected nothing or -");
      return request(sock, args.empty() ? "save" : "save -");
    }
    if (cmd == "raw") {
      if (args.size() != 1)
        throw UsageError("raw: expected one quoted command, e.g. raw 'show interfaces'");
      return request(sock, args[0]);
    }
    throw UsageError("'" + cmd +
                     "' is not a command (expected add, del, list, stats, monitor, replace, check, "
                     "flush, save, raw)");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "xdpfw-ctl: %s\n%s", e.what(), usage);
    return 2;
  } catch (const po::error& e) {
    std::fprintf(stderr, "xdpfw-ctl: add: %s\n%s", e.what(), usage);
    return 2;
  }
}
