// xdpfw-ctl (the `manager` CLI of the seed XDP firewall this project grew
// from, bench/baselines/seed.bpf.c) against the real agent: every
// subcommand, bad flags and stray words, options in any position, an absent
// agent and one that goes away, the live monitor with real traffic, and a
// watcher that stops reading while an honest client is served.
#include <algorithm>
#include <atomic>
#include <thread>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace ctl_rig {  // named: the fixture is a base of the test cases

struct Ctl {
  explicit Ctl(const fs::path& sock) : sock(sock) {}
  // Runs xdpfw-ctl ARGS; stdout and stderr apart.
  int run(const std::string& args, std::string* out = nullptr, std::string* err = nullptr) {
    static int n = 0;
    fs::path e = fs::path("/tmp") /
                 ("xdpfw-ctl-err-" + std::to_string(getpid()) + "-" + std::to_string(n++));
    int st = 0;
    std::string o = shell("XDPFW_SOCKET=" + quote(sock.string()) + " timeout 20 " + XDPFW_CTL_BIN +
                              " " + args + " 2>" + e.string(),
                          &st);
    if (out) *out = o;
    if (err) *err = read_file(e);
    fs::remove(e);
    return st;
  }
  fs::path sock;
};

// An agent with no rules, started, and xdpfw-ctl pointed at it.
struct Started {
  NetNs ns;
  FirewallAgent fw{ns, ""};
  Ctl ctl{(fw.start(), fw.sock)};
  std::string out, err;
};

}  // namespace ctl_rig

using namespace ctl_rig;

BOOST_AUTO_TEST_SUITE(ctl)

BOOST_FIXTURE_TEST_CASE(subcommands_flags_and_errors, Started) {
  // The original design's own example.
  BOOST_TEST(ctl.run("add --src 127.0.0.1 --dport 8080 --proto tcp --action drop", &out) == 0);
  BOOST_TEST(out == "id 1\n");
  BOOST_TEST(
      ctl.run("add --src 198.18.0.0/15 --proto udp --sport 1024-65535 --action pass --prio 5",
              &out) == 0);
  BOOST_TEST(out == "id 2\n");
  BOOST_TEST(ctl.run("list", &out) == 0);
  BOOST_TEST(
      out.find("id 2 prio 5 src 198.18.0.0/15 proto udp sport 1024-65535 action pass packets 0") ==
          0u,
      out);
  BOOST_TEST(ctl.run("list --json", &out) == 0);
  BOOST_TEST(json::parse(out).size() == 2u);
  BOOST_TEST(ctl.run("stats", &out) == 0);
  BOOST_TEST(out.find("packets 0\n") == 0u, out);
  BOOST_TEST(ctl.run("stats --json", &out) == 0);
  BOOST_TEST(json::parse(out).contains("match_drop"));
  BOOST_TEST(ctl.run("raw 'show interfaces'", &out) == 0);
  BOOST_TEST(out.find("# no interfaces configured") == 0u, out);  // this agent has none
  BOOST_TEST(out.find("\nlo ifindex 1") != std::string::npos, out);
  // The stateful fields, and --log, a flag without a value.
  BOOST_TEST(ctl.run("add --proto tcp --tcp-flags syn,!ack --rate 100/s --burst 20 --per src/24 "
                     "--log --action drop --prio 7",
                     &out) == 0);
  BOOST_TEST(out == "id 3\n");
  BOOST_TEST(ctl.run("add --ct established,related --action pass --prio 1", &out) == 0);
  BOOST_TEST(ctl.run("add --dport 53 --proto udp --action audit", &out) == 0);
  BOOST_TEST(ctl.run("list", &out) == 0);
  BOOST_TEST(out.find("id 3 prio 7 proto tcp tcp-flags syn,!ack rate 100/s burst 20 per src/24 "
                      "log action drop packets 0") != std::string::npos,
             out);
  BOOST_TEST(out.find("ct established,related action pass") != std::string::npos, out);
  BOOST_TEST(out.find("dport 53 action audit") != std::string::npos, out);
  BOOST_TEST(ctl.run("--help", &out) == 0);
  BOOST_TEST(out.find("[--log]") != std::string::npos, out);
  BOOST_TEST(out.find("[--tcp-flags F[,!F]]") != std::string::npos, out);
  for (const char* id : {"3", "4", "5"}) BOOST_TEST(ctl.run(std::string("del ") + id, &out) == 0);
  BOOST_TEST(ctl.run("del 1", &out) == 0);
  BOOST_TEST(out == "deleted 1\n");

  // The agent says no: exit 1, its message on stderr, nothing on stdout.
  BOOST_TEST(ctl.run("add --proto tcp --dport 90-80 --action drop", &out, &err) == 1);
  BOOST_TEST(out.empty());
  BOOST_TEST(
      err ==
      "xdpfw-ctl: rule add: dport: range 90-80 is reversed (expected lo-hi with lo <= hi)\n");
  BOOST_TEST(ctl.run("del 42", &out, &err) == 1);
  BOOST_TEST(err.find("xdpfw-ctl: rule del: id: no rule 42") == 0u);
  // Bad usage: exit 2 with what was wrong.
  BOOST_TEST(ctl.run("add --colour red --action drop", &out, &err) == 2);
  BOOST_TEST(err.find("unrecognised option '--colour'") != std::string::npos, err);
  BOOST_TEST(ctl.run("add --dport 22", &out, &err) == 2);
  BOOST_TEST(err.find("add: --action drop|pass|audit is required") != std::string::npos);
  BOOST_TEST(ctl.run("list --yaml", &out, &err) == 2);
  BOOST_TEST(ctl.run("frobnicate", &out, &err) == 2);
  BOOST_TEST(err.find("'frobnicate' is not a command") != std::string::npos);
  BOOST_TEST(ctl.run("", &out, &err) == 2);
  BOOST_TEST(json::parse((ctl.run("list --json", &out), out)).size() == 1u);  // nothing half-done

  // No agent: exit 3 and a message that says so.
  Ctl nowhere(fw.dir / "nobody-here.sock");
  BOOST_TEST(nowhere.run("list", &out, &err) == 3);
  BOOST_TEST(
      err.find("xdpfw-ctl: no agent listening on " + (fw.dir / "nobody-here.sock").string()) == 0u,
      err);
  BOOST_TEST(ctl.run("--socket " + (fw.dir / "nobody-here.sock").string() + " list", &out, &err) ==
             3);
}

BOOST_FIXTURE_TEST_CASE(stray_words_are_refused_and_options_go_anywhere, Started) {
  BOOST_TEST_REQUIRE(ctl.run("add --proto udp --dport 53 --action pass", &out) == 0);
  // Every subcommand refuses words it does not take: exit 2, the word named,
  // nothing sent to the agent.
  for (std::string line :
       {"add --action drop extra", "del 1 6", "flush now", "list all", "stats now", "interfaces x",
        "monitor x", "replace a b", "check a b", "save - x", "reload now", "help me"}) {
    BOOST_TEST(ctl.run(line, &out, &err) == 2, line);
    std::string word = line.substr(line.rfind(' ') + 1);
    BOOST_TEST(err.find("xdpfw-ctl: " + line.substr(0, line.find(' ')) + ": unexpected '" + word +
                        "'") == 0u,
               line << ": " << err);
    BOOST_TEST(out.empty(), line);
  }
  BOOST_TEST(ctl.run("del", &out, &err) == 2);
  BOOST_TEST(err.find("xdpfw-ctl: del: expected one rule id") == 0u, err);
  BOOST_TEST(ctl.run("raw", &out, &err) == 2);
  // Options a command does not take, given twice, or without their value.
  BOOST_TEST(ctl.run("flush --json", &out, &err) == 2);
  BOOST_TEST(err.find("xdpfw-ctl: flush: unexpected option '--json' (flush takes no option)") == 0u,
             err);
  BOOST_TEST(ctl.run("list --append f", &out, &err) == 2);
  BOOST_TEST(err.find("list takes --json") != std::string::npos, err);
  BOOST_TEST(ctl.run("list --json --json", &out, &err) == 2);
  BOOST_TEST(ctl.run("add --action", &out, &err) == 2);
  BOOST_TEST(err.find("option '--action' needs a value") != std::string::npos, err);
  ctl.run("list --json", &out);
  BOOST_TEST(json::parse(out).size() == 1u);  // nothing above reached the agent
  BOOST_TEST(ctl.run("del 1", &out) == 0);    // the rule is still there

  // Options before, between or after the words; --socket anywhere.
  Ctl nowhere(fw.dir / "nobody-here.sock");  // $XDPFW_SOCKET leads nowhere
  std::string s = " --socket " + fw.sock.string();
  BOOST_TEST(nowhere.run("list --json" + s, &out, &err) == 0, err);
  BOOST_TEST(json::parse(out).empty());
  BOOST_TEST(nowhere.run("--json" + s + " list", &out, &err) == 0, err);
  BOOST_TEST(json::parse(out).empty());
  BOOST_TEST(nowhere.run("--socket=" + fw.sock.string() + " stats --json", &out) == 0);
  BOOST_TEST(json::parse(out).contains("match_drop"));
  BOOST_TEST(nowhere.run("--action drop" + s + " --proto tcp add --dport 22", &out, &err) == 0,
             err);
  BOOST_TEST(out == "id 2\n");
  BOOST_TEST(nowhere.run("del" + s + " 2", &out) == 0);
  BOOST_TEST(out == "deleted 2\n");
  BOOST_TEST(nowhere.run("list", &out, &err) == 3);  // and without it, $XDPFW_SOCKET

  // --version: the agent's version, exit 0, whatever else is on the line.
  BOOST_TEST(ctl.run("--version", &out) == 0);
  BOOST_TEST(out == "xdpfw-ctl 0.1.0\n");
  std::string agent;
  BOOST_TEST(ctl.run("raw version", &agent) == 0);
  BOOST_TEST(agent.find("xdpfw-host " + out.substr(10, out.size() - 11) + " ") == 0u, agent);
  BOOST_TEST(nowhere.run("list --version", &out) == 0);
  BOOST_TEST(out == "xdpfw-ctl 0.1.0\n");
  BOOST_TEST(ctl.run("--help", &out) == 0);
  BOOST_TEST(out.find("interfaces [--json]") != std::string::npos, out);
  BOOST_TEST(out.find("reload ") != std::string::npos, out);

  // interfaces [--json]: show interfaces.
  BOOST_TEST(ctl.run("interfaces", &out) == 0);
  BOOST_TEST(out.find("# no interfaces configured") == 0u, out);  // this agent has none
  BOOST_TEST(out.find("\nlo ifindex 1") != std::string::npos, out);
  BOOST_TEST(ctl.run("interfaces --json", &out) == 0);
  json ifs = json::parse(out);
  BOOST_TEST_REQUIRE(ifs.is_array());
  BOOST_TEST(std::any_of(ifs.begin(), ifs.end(), [](const json& i) {
    return i.dump().find("\"lo\"") != std::string::npos;
  }));

  // raw: several commands, answered in order; exit 1 when any reply is an error.
  BOOST_TEST(ctl.run("raw version 'show plugins'", &out, &err) == 0, err);
  BOOST_TEST(out.find("xdpfw-host ") == 0u, out);
  BOOST_TEST(out.find("\n\nxdpfw ") != std::string::npos, out);  // an empty line between
  BOOST_TEST(err.empty());
  BOOST_TEST(ctl.run("raw 'rule del 42'", &out, &err) == 1);
  BOOST_TEST(out.empty());
  BOOST_TEST(err.find("xdpfw-ctl: rule del: id: no rule 42") == 0u, err);
  BOOST_TEST(ctl.run("raw frobnicate version", &out, &err) == 1);
  BOOST_TEST(err.find("xdpfw-ctl: unknown command 'frobnicate'") == 0u, err);
  BOOST_TEST(out.find("xdpfw-host ") == 0u, out);  // the later command still answered
  BOOST_TEST(ctl.run("raw version 'rule list yaml'", &out, &err) == 1);
  BOOST_TEST(out.find("xdpfw-host ") == 0u, out);
  BOOST_TEST(!err.empty());
}

// The bash completion as installed (packaging/), answered by xdpfw-ctl from
// its verb table and by the running agent: verbs, options per verb, values
// of the rule fields (a list value too), rule ids and set names the agent
// has, files; nothing, and no wait, when the agent does not answer.
BOOST_FIXTURE_TEST_CASE(the_completion_reads_the_verb_table_and_the_agent, Started) {
  BOOST_TEST_REQUIRE(ctl.run("add --proto tcp --dport 22 --action drop", &out) == 0);
  BOOST_TEST_REQUIRE(ctl.run("add --proto udp --action pass", &out) == 0);
  BOOST_TEST_REQUIRE(ctl.run("set create admins", &out) == 0);
  auto complete = [&](const std::string& words, const fs::path& sock) {
    int st = 0;
    std::string o =
        shell("XDPFW_SOCKET=" + quote(sock.string()) + " timeout 10 bash -c " +
                  quote("source " XDPFW_SOURCE_DIR "/packaging/xdpfw-ctl.bash-completion; "
                        "COMP_WORDS=(xdpfw-ctl " +
                        words +
                        "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _xdpfw_ctl " XDPFW_CTL_BIN
                        "; echo \"${COMPREPLY[*]}\""),
              &st);
    BOOST_TEST(st == 0, words << ": exit " << st);
    return o.substr(0, o.find('\n'));
  };
  auto here = [&](const std::string& words) { return complete(words, fw.sock); };
  BOOST_TEST(here("''") ==
             "add del status list stats interfaces monitor replace confirm check "
             "flush save reload set raw help");
  BOOST_TEST(ctl.run("frobnicate", &out, &err) == 2);
  BOOST_TEST(err.find("(expected add, del, status, list, stats, interfaces, monitor, replace, "
                      "confirm, check, flush, save, reload, set, raw, help)") != std::string::npos,
             err);
  BOOST_TEST(here("re") == "replace reload");
  BOOST_TEST(here("list --") == "--socket --help --version --json");
  BOOST_TEST(here("list --json --") == "--socket --help --version");  // not twice
  BOOST_TEST(here("flush --") == "--socket --help --version");
  std::string add = here("add --");
  for (const char* o : {"--tcp-flags", "--ct", "--rate", "--burst", "--per", "--log", "--action"})
    BOOST_TEST(add.find(o) != std::string::npos, o << " | " << add);
  BOOST_TEST(here("add --proto ''") == "tcp udp icmp icmpv6");
  BOOST_TEST(here("add --action = p") == "pass");  // --action=p, as bash splits it
  BOOST_TEST(here("add --ct new,e") == "new,established");
  BOOST_TEST(here("add --tcp-flags 'syn,!a'") == "syn,!ack");
  BOOST_TEST(here("del ''") == "1 2");  // the agent's rule ids
  BOOST_TEST(here("del 1 ''") == "");
  BOOST_TEST(here("set a") == "add");
  BOOST_TEST(here("set add ''") == "admins");  // the agent's sets
  BOOST_TEST(here("set del admins 198.18.0.1 ''") == "if-present");
  BOOST_TEST(here("set create x timeout ''") == "");  // its value
  BOOST_TEST(here("set create x timeout 1h ''") == "max");
  write_file(fw.dir / "completion-site.rules", "proto tcp action drop\n");
  BOOST_TEST(here("check " + (fw.dir / "completion-s").string()) ==
             (fw.dir / "completion-site.rules").string());
  BOOST_TEST(here("--socket = " + (fw.dir / "completion-s").string()) ==
             (fw.dir / "completion-site.rules").string());
  // --socket on the line names the agent asked.
  fs::path nowhere = fw.dir / "nobody-here.sock";
  BOOST_TEST(complete("del ''", nowhere) == "");
  BOOST_TEST(complete("--socket " + fw.sock.string() + " del ''", nowhere) == "1 2");
  // An agent that never answers (a socket nobody accepts on): nothing, and
  // the completion returns (timeout 10 would say 124).
  fs::path mute = fw.dir / "mute.sock";
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, mute.c_str(), sizeof a.sun_path - 1);
  BOOST_TEST_REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  BOOST_TEST_REQUIRE(listen(l, 4) == 0);
  BOOST_TEST(complete("set add ''", mute) == "");
  close(l);
}

// A ban for ever as fail2ban and operators write it: "-1" and "-1s" are
// words (not options), as are 0 and none.
BOOST_FIXTURE_TEST_CASE(permanent_timeouts_reach_the_agent, Started) {
  BOOST_TEST_REQUIRE(ctl.run("set create bans timeout 1h", &out, &err) == 0, err);
  int n = 1;
  for (const char* t : {"-1", "-1s", "0", "none"}) {
    std::string addr = "198.18.0." + std::to_string(n++);
    BOOST_TEST(ctl.run("set add bans " + addr + " timeout " + t, &out, &err) == 0,
               t << ": " << err);
  }
  BOOST_TEST(ctl.run("set list bans --json", &out) == 0);
  auto members = json::parse(out).at("members");
  BOOST_TEST(members.size() == 4u);
  for (const auto& m : members) BOOST_TEST(m.at("expires").is_null(), m.dump());  // for ever
  BOOST_TEST(ctl.run("set add bans 198.18.0.9 timeout -5m", &out, &err) == 1);    // the agent's no
  BOOST_TEST(err.find("timeout: '-5m' is not a duration") != std::string::npos, err);
  BOOST_TEST(ctl.run("list -1", &out, &err) == 2);  // a word list does not take
}

// The agent-side 'reload' command: answers "reloaded..." or ERR (as SIGHUP
// would refuse the file). Needs the agent's reload command ('raw help' lists
// it); without it this case fails on the first check.
BOOST_FIXTURE_TEST_CASE(reload_asks_the_agent, Started) {
  ctl.run("raw help", &out);
  BOOST_TEST_REQUIRE(out.find("reload") != std::string::npos,
                     "the agent has no 'reload' command yet:\n"
                         << out);
  BOOST_TEST(ctl.run("reload", &out, &err) == 0, err);
  BOOST_TEST(out.rfind("reloaded", 0) == 0u, out);
  std::string good = read_file(fw.dir / "xdpfw.conf");
  write_file(fw.dir / "xdpfw.conf", good + "colour = red\n");  // in [plugin.xdpfw]
  BOOST_TEST(ctl.run("reload", &out, &err) == 1);
  BOOST_TEST(out.empty(), out);
  BOOST_TEST(err.find("xdpfw-ctl: ") == 0u, err);
  BOOST_TEST(err.find("colour") != std::string::npos, err);
  write_file(fw.dir / "xdpfw.conf", good);
  BOOST_TEST(ctl.run("reload", &out, &err) == 0, err);
}

BOOST_FIXTURE_TEST_CASE(replace_check_save_flush_with_files, Started) {
  // A rules file as operators write them (the shipped example's shape):
  // comments, blank lines, a line that is the default end tag.
  fs::path file = fw.dir / "site.rules";
  write_file(file,
             "# site policy\n\nprio 10 proto tcp dport 22 action drop\n\n# XDPFW_END\n"
             "proto udp dport 53 action pass\nsrc 198.18.0.0/15 action drop");
  BOOST_TEST(ctl.run("check " + file.string(), &out) == 0);
  BOOST_TEST(out == "ok: 3 rule(s) would be installed\n");
  BOOST_TEST(ctl.run("list --json", &out) == 0);
  BOOST_TEST(json::parse(out).empty());  // check changed nothing
  BOOST_TEST(ctl.run("replace " + file.string(), &out) == 0);
  BOOST_TEST(out == "replaced: 3 rule(s)\n");
  // save - prints the set in the file grammar: it loads back as it is.
  std::string saved;
  BOOST_TEST(ctl.run("save -", &saved) == 0);
  BOOST_TEST(saved.find("id 1 prio 10 proto tcp dport 22 action drop\n") == 0u, saved);
  write_file(fw.dir / "saved.rules", saved);
  std::string list_before;
  ctl.run("list --json", &list_before);
  BOOST_TEST(ctl.run("replace " + (fw.dir / "saved.rules").string(), &out) == 0);
  ctl.run("list --json", &out);
  BOOST_TEST(json::parse(out) == json::parse(list_before));
  // A file that does not compile: exit 1, the line named, nothing changed.
  write_file(fw.dir / "bad.rules", "proto tcp action drop\n\nproto tcp dport 9-1 action drop\n");
  BOOST_TEST(ctl.run("replace " + (fw.dir / "bad.rules").string(), &out, &err) == 1);
  BOOST_TEST(err.find("xdpfw-ctl: rule replace: payload:3: dport: range 9-1") == 0u, err);
  BOOST_TEST(ctl.run("check " + (fw.dir / "bad.rules").string(), &out, &err) == 1);
  // An empty file is refused: flush is how a set is emptied.
  write_file(fw.dir / "empty.rules", "# nothing\n\n");
  BOOST_TEST(ctl.run("replace " + (fw.dir / "empty.rules").string(), &out, &err) == 1);
  BOOST_TEST(err.find("the payload holds no rule") != std::string::npos, err);
  ctl.run("list --json", &out);
  BOOST_TEST(json::parse(out).size() == 3u);
  BOOST_TEST(ctl.run("replace " + (fw.dir / "missing.rules").string(), &out, &err) == 2);
  BOOST_TEST(ctl.run("flush", &out) == 0);
  BOOST_TEST(out == "flushed 3 rule(s)\n");
  BOOST_TEST(ctl.run("save - extra", &out, &err) == 2);
  // save NAME: into the state folder's saved/, as the agent allows it.
  BOOST_TEST(ctl.run("save backup.rules", &out, &err) == 0, err);
  BOOST_TEST(
      out == "saved 0 rule(s) to " + (fw.dir / "state" / "saved" / "backup.rules").string() + "\n",
      out);
  BOOST_TEST(ctl.run("save ../x", &out, &err) == 1);
  BOOST_TEST(err.find("xdpfw-ctl: save: '../x' is not a file name") == 0u, err);
}

BOOST_AUTO_TEST_CASE(monitor_sees_real_traffic) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\nevent-rate = 100000\nevent-burst = 100000");
  fw.start_attached("fwt0");
  fs::path appended = fw.dir / "monitor.json";
  write_file(appended, "{\"earlier\":true}\n");
  pid_t mon = fork();
  if (mon == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    setenv("XDPFW_SOCKET", fw.sock.c_str(), 1);
    execl(XDPFW_CTL_BIN, "xdpfw-ctl", "monitor", "--append", appended.c_str(), nullptr);
    _exit(127);
  }
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  BOOST_TEST(wait_until([&] {
    send_to(tx, AF_INET, "198.18.0.1", 7321, 1);
    usleep(50000);
    return read_file(appended).find("\"dst_port\":7321") != std::string::npos;
  }));
  kill(mon, SIGINT);  // Ctrl-C ends it cleanly
  int status = 0;
  BOOST_TEST(wait_until([&] { return waitpid(mon, &status, WNOHANG) == mon; }));
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  std::istringstream lines(read_file(appended));
  std::string first, line;
  std::getline(lines, first);
  BOOST_TEST(first == "{\"earlier\":true}");  // appended, as the original monitor did
  int events = 0;
  while (std::getline(lines, line)) {
    json j = json::parse(line);
    if (j.value("dst_port", json()) == 7321) {  // ICMP events have no dst_port
      ++events;
      BOOST_TEST(j["src_ip"] == "198.18.0.2");
      BOOST_TEST(j["interface"] == "fwt0");
    }
  }
  BOOST_TEST(events >= 1);
  close(tx);
}

// The agent stops under a running monitor: exit 3 and a message, not a
// silent 0 that looks like a clean end.
BOOST_AUTO_TEST_CASE(monitor_reports_the_agent_going_away) {
  NetNs ns;
  FirewallAgent fw(ns, "");
  fw.start();
  fs::path err_file = fw.dir / "monitor.err";
  pid_t mon = fork();
  if (mon == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    setenv("XDPFW_SOCKET", fw.sock.c_str(), 1);
    execl(XDPFW_CTL_BIN, "xdpfw-ctl", "monitor", nullptr);
    _exit(127);
  }
  // Connected (the agent logs each client) and its stream set up.
  BOOST_TEST(wait_until([&] {
    return fw.host->log().find("client pid " + std::to_string(mon) + " ") != std::string::npos;
  }));
  usleep(200000);
  int status = 0;
  BOOST_TEST(waitpid(mon, &status, WNOHANG) == 0);  // still watching
  fw.host->signal(SIGTERM);
  BOOST_TEST(fw.host->exit_code() == 0);
  BOOST_TEST(wait_until([&] { return waitpid(mon, &status, WNOHANG) == mon; }));
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 3), "status " << status);
  BOOST_TEST(read_file(err_file) == "xdpfw-ctl: the agent went away: the event stream from " +
                                        fw.sock.string() + " ended\n",
             read_file(err_file));
}

BOOST_AUTO_TEST_CASE(a_stalled_watcher_delays_nobody) {
  Pair p;
  p.peer_ns.run("sysctl -qw net.ipv6.conf.peer0.disable_ipv6=1");
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\nevent-rate = 1000000\nevent-burst = 1000000");
  fw.start_attached("fwt0");
  RawClient stalled(fw.sock), reader(fw.sock);  // two watchers at once
  BOOST_TEST_REQUIRE((stalled.connected && reader.connected));
  std::string cmd = "show events\n";
  BOOST_TEST_REQUIRE(write(stalled.fd, cmd.data(), cmd.size()) == ssize_t(cmd.size()));
  BOOST_TEST_REQUIRE(write(reader.fd, cmd.data(), cmd.size()) == ssize_t(cmd.size()));
  std::string read_by_reader;
  std::atomic<bool> reading{true};
  std::thread reader_thread([&] {
    char buf[65536];
    while (reading) {
      ssize_t n = recv(reader.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        read_by_reader.append(buf, size_t(n));
      else
        usleep(1000);
    }
  });
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  send_to(tx, AF_INET, "198.18.0.1", 7400, 20000);  // ~5 MB of event lines it never reads
  Ctl ctl(fw.sock);
  std::string out;
  BOOST_TEST(ctl.run("stats --json", &out) == 0);  // answered while the watcher is stuck
  BOOST_TEST(wait_until([&] {
    ctl.run("stats --json", &out);
    return json::parse(out)["default_pass"].get<uint64_t>() >= 20000;
  }));
  // The log lost nothing to the stalled watcher.
  BOOST_TEST(wait_until([&] {
    ctl.run("stats --json", &out);
    json j = json::parse(out);
    return j["log_lines"].get<uint64_t>() + j["events_lost"].get<uint64_t>() ==
           j["events_sent"].get<uint64_t>();
  }));
  BOOST_TEST(json::parse(out)["events_sent"].get<uint64_t>() >= 20000u);
  reading = false;
  reader_thread.join();
  size_t reader_lines = std::count(read_by_reader.begin(), read_by_reader.end(), '\n');
  BOOST_TEST_MESSAGE("the reading watcher got " << reader_lines << " lines");
  BOOST_TEST(reader_lines >= 1000u);  // it was served while the other one stalled
  // The watcher reads again: it is told how much it missed.
  std::string got;
  fcntl(stalled.fd, F_SETFL, O_NONBLOCK);
  BOOST_TEST(wait_until([&] {
    char buf[65536];
    ssize_t n;
    while ((n = read(stalled.fd, buf, sizeof buf)) > 0) got.append(buf, size_t(n));
    send_to(tx, AF_INET, "198.18.0.1", 7401, 1);
    usleep(20000);
    return got.find("{\"dropped\":") != std::string::npos;
  }));
  close(tx);
}

BOOST_AUTO_TEST_SUITE_END()
