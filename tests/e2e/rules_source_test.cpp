// The rules from a directory the agent watches, with the real agent and
// real traffic between namespaces: files added, changed, renamed over and
// removed, a kubelet-style ConfigMap update (a new timestamped folder, the
// "..data" symlink swapped) each reach the datapath by themselves; a file
// that does not compile is refused whole, with its FILE:LINE, and the
// running rules stay; 100 rapid changes end in the last one; rules files
// changed while the agent was stopped win at its start.
#include <chrono>
#include <thread>

#include "e2e/traffic.hpp"
#include "rules_file.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

// Writes FILE as a config tool would: a new file renamed over the old one.
void replace_file(const fs::path& file, const std::string& text) {
  fs::path tmp = file.parent_path() / ("." + file.filename().string() + ".tmp");
  write_file(tmp, text);
  fs::rename(tmp, file);
}

// The agent on fwt0 with SECTION and RULES; listeners on ports 5000 and
// 5001 of its namespace; a sender in the peer's.
struct Host {
  Pair p;
  FirewallAgent fw;
  int rx5000 = -1, rx5001 = -1, tx = -1;
  Host(const std::string& section, const std::string& rules) : fw(p.fw_ns, section, rules) {
    fw.start_attached("fwt0");
    rx5000 = bound(p.fw_ns, AF_INET, 5000);
    rx5001 = bound(p.fw_ns, AF_INET, 5001);
    tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
    warm_up(tx, AF_INET, "198.18.0.1", 5001, rx5001);
  }
  ~Host() {
    for (int fd : {rx5000, rx5001, tx}) close(fd);
  }
  int got(uint16_t port) { return delivered(tx, port == 5000 ? rx5000 : rx5001, 5, port); }
  bool passes(uint16_t port) { return got(port) == 5; }
  bool dropped(uint16_t port) { return got(port) == 0; }
  json source() { return json::parse(fw.ask("show rules-source json")); }
  std::string ctl(const std::string& args, int* status = nullptr) {
    return shell(
        std::string(XDPFW_CTL_BIN) + " --socket " + fw.sock.string() + " " + args + " 2>&1",
        status);
  }
  int ctl_exit(const std::string& args) {
    int st = 0;
    ctl(args, &st);  // shell() gives the exit status
    return st;
  }
  // Until COND holds (the watch delay, a reading, a compile); the seconds
  // it took.
  double until(const std::function<bool()>& cond) {
    auto t0 = std::chrono::steady_clock::now();
    BOOST_TEST_REQUIRE(wait_until(cond, 10), fw.log());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

// A rules directory (outside the agent's folder) with one file.
struct RulesDir {
  TempDir rules;
  fs::path d = rules.path / "rules.d";
  explicit RulesDir(const std::string& first) {
    fs::create_directories(d);
    write_file(d / "10-base.rules", first);
  }
};

// The agent watching that directory.
struct Rig : RulesDir, Host {
  explicit Rig(const std::string& first = "prio 10 proto udp dport 5000 action drop\n")
      : RulesDir(first),
        Host("interfaces = fwt*\nrules = " + d.string() + "\nwatch-delay = 100ms", "") {}
};

}  // namespace

BOOST_AUTO_TEST_SUITE(rules_source)

BOOST_AUTO_TEST_CASE(a_watched_directory_reaches_the_datapath) {
  Rig r;
  BOOST_TEST(r.dropped(5000));
  BOOST_TEST(r.passes(5001));
  json s = r.source();
  BOOST_TEST(s["directory"] == true);
  BOOST_TEST(s["watching"] == true);
  BOOST_TEST(s["files"].size() == 1u);

  // A file added: applied (the datapath changed) within the watch delay
  // and a poll of the agent's loop.
  uint64_t applied = s["applied"].get<uint64_t>();
  write_file(r.d / "20-team.rules", "# the web team's\nprio 5 proto udp dport 5001 action drop\n");
  double took = r.until([&] { return r.source()["applied"].get<uint64_t>() > applied; });
  BOOST_TEST_MESSAGE("file added -> applied to the datapath: " << took * 1000 << " ms");
  BOOST_TEST(r.dropped(5001));
  BOOST_TEST(r.dropped(5000));
  // Each rule says where it comes from.
  std::string list = r.fw.ask("rule list");
  BOOST_TEST(list.find("dport 5001 action drop packets") != std::string::npos, list);
  BOOST_TEST(list.find("# " + (r.d / "20-team.rules").string() + ":2") != std::string::npos, list);
  json j = json::parse(r.fw.ask("rule list json"));
  BOOST_TEST(j[0]["origin"] == (r.d / "20-team.rules").string() + ":2", j.dump());

  // Changed in place (an editor writing the file), then renamed over.
  uint64_t id_before = j[0]["id"].get<uint64_t>();
  write_file(
      r.d / "20-team.rules",
      "# the web team's\n# one more comment line\nprio 5 proto udp dport 5001 action drop\n");
  r.until([&] {
    return json::parse(r.fw.ask("rule list json"))[0]["origin"] ==
           (r.d / "20-team.rules").string() + ":3";
  });
  // Line numbers are not a rule's identity: its id (and counters) stay.
  BOOST_TEST(json::parse(r.fw.ask("rule list json"))[0]["id"].get<uint64_t>() == id_before);
  applied = r.source()["applied"].get<uint64_t>();
  replace_file(r.d / "10-base.rules", "prio 10 proto udp dport 5002 action drop\n");
  took = r.until([&] { return r.source()["applied"].get<uint64_t>() > applied; });
  BOOST_TEST_MESSAGE("file renamed over -> applied to the datapath: " << took * 1000 << " ms");
  BOOST_TEST(r.passes(5000));
  BOOST_TEST(r.dropped(5001));

  // A file that does not compile: refused whole, with its FILE:LINE; the
  // running rules stay; the status, the metric and the log say so.
  write_file(r.d / "30-broken.rules",
             "proto udp dport 5000 action drop\nproto udp dport 99999 action drop\n");
  r.until([&] { return r.source()["result"] == "refused"; });
  s = r.source();
  BOOST_TEST(
      s["message"].get<std::string>().find((r.d / "30-broken.rules").string() + ":2: dport") == 0u,
      s.dump());
  BOOST_TEST(s["refused"] == 1);
  BOOST_TEST(r.passes(5000));  // its first line was not applied either
  BOOST_TEST(r.dropped(5001));
  std::string metrics = r.fw.ask("show metrics");
  BOOST_TEST(metrics.find("xdpfw_rules_source_refused 1") != std::string::npos);
  BOOST_TEST(metrics.find("xdpfw_rules_source_changes_total{outcome=\"refused\"} 1") !=
             std::string::npos);
  BOOST_TEST(r.fw.log().find("30-broken.rules:2: dport") != std::string::npos);
  // xdpfw-ctl status: one screen says it too.
  std::string status = r.ctl("status");
  BOOST_TEST(status.find("source " + r.d.string() + ": refused at ") != std::string::npos, status);
  BOOST_TEST(
      status.find("(" + (r.d / "30-broken.rules").string() + ":2: dport") != std::string::npos,
      status);
  BOOST_TEST(status.find("; the running rules stay)") != std::string::npos, status);
  BOOST_TEST(
      status.find("interfaces 1 attached of 1 selected, 0 with an error\n") != std::string::npos,
      status);
  json st = json::parse(r.ctl("status --json"));
  BOOST_TEST(st["source"]["result"] == "refused");
  BOOST_TEST(r.ctl_exit("status") == 4);  // for health checks
  BOOST_TEST(r.ctl_exit("status --json") == 4);
  BOOST_TEST(st["rules"] == json::parse(r.fw.ask("rule list json")).size());
  BOOST_TEST(st["rules"].get<size_t>() >= 1u);
  // Mended: applied.
  write_file(r.d / "30-broken.rules", "proto udp dport 5000 action drop\n");
  r.until([&] { return r.dropped(5000); });
  BOOST_TEST(r.source()["result"] == "applied");
  status = r.ctl("status");
  BOOST_TEST(status.find("source " + r.d.string() + ": applied at ") != std::string::npos, status);
  BOOST_TEST(status.find("refused") == std::string::npos, status);
  BOOST_TEST(r.ctl_exit("status") == 0);
  BOOST_TEST(r.fw.ask("show metrics").find("xdpfw_rules_source_refused 0") != std::string::npos);

  // Removed.
  fs::remove(r.d / "20-team.rules");
  fs::remove(r.d / "30-broken.rules");
  r.until([&] { return r.passes(5001) && r.passes(5000); });
  BOOST_TEST(r.source()["files"].size() == 1u);

  // A hundred rapid changes end in the last one.
  for (int i = 0; i < 100; ++i)
    replace_file(r.d / "10-base.rules",
                 "prio 10 proto udp dport " + std::to_string(6000 + i) + " action drop\n");
  replace_file(r.d / "10-base.rules", "prio 10 proto udp dport 5000 action drop\n");
  r.until([&] { return r.dropped(5000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  j = json::parse(r.fw.ask("rule list json"));
  BOOST_TEST_REQUIRE(j.size() == 1u, j.dump());
  BOOST_TEST(j[0]["rule"].get<std::string>().find("dport 5000 action drop") != std::string::npos);

  // save into a directory is refused; save - prints the rules.
  BOOST_TEST(r.fw.ask("save").find("save: the rules are the directory") != std::string::npos);
  BOOST_TEST(r.fw.ask("save -").find("dport 5000 action drop") != std::string::npos);
}

// A Kubernetes ConfigMap volume: the files are symlinks into "..data", a
// symlink to a timestamped folder; kubelet writes a new folder and renames
// a new "..data" over the old one.
BOOST_AUTO_TEST_CASE(a_kubelet_configmap_update_is_applied) {
  TempDir vol;
  auto publish = [&](const std::string& stamp, const std::string& text) {
    fs::create_directories(vol.path / stamp);
    write_file(vol.path / stamp / "fw.rules", text);
    fs::create_directory_symlink(stamp, vol.path / "..data_tmp");
    fs::rename(vol.path / "..data_tmp", vol.path / "..data");
  };
  publish("..2026_12_04_10_00_00.1", "prio 10 proto udp dport 5000 action drop\n");
  fs::create_symlink("..data/fw.rules", vol.path / "fw.rules");
  Host h("interfaces = fwt*\nrules = " + vol.path.string() + "\nwatch-delay = 100ms", "");
  BOOST_TEST(h.dropped(5000));
  publish("..2026_12_04_10_05_00.2", "prio 10 proto udp dport 5001 action drop\n");
  fs::remove_all(vol.path / "..2026_12_04_10_00_00.1");
  h.until([&] { return h.passes(5000); });
  BOOST_TEST(h.dropped(5001));
  json s = h.source();
  BOOST_TEST(s["files"].size() == 1u, s.dump());  // "..data" and its folders are not rules
}

// Rules are root's input: a file another user owns is refused with its
// path; a link to a root-only file (as /etc/shadow) is refused without a
// byte of it in the status, the log or xdpfw-ctl; a sparse file of 1 GiB
// is refused after reading rules-max-size, and the agent answers all along.
BOOST_AUTO_TEST_CASE(untrusted_or_oversized_sources_are_refused) {
  Rig r;
  auto refused_with = [&](const std::string& text) {
    r.until([&] {
      json s = r.source();
      return s["result"] == "refused" &&
             s["message"].get<std::string>().find(text) != std::string::npos;
    });
  };
  fs::path other = r.d / "30-other.rules";
  write_file(other, "prio 0 action pass\n");
  BOOST_TEST_REQUIRE(chown(other.c_str(), 65534, 65534) == 0);
  refused_with("rules " + other.string() + " is owned by uid 65534, neither root nor the agent's");
  BOOST_TEST(r.dropped(5000));  // its 'prio 0 action pass' never ran
  BOOST_TEST(r.ctl_exit("status") == 4);
  fs::remove(other);
  r.until([&] { return r.source()["result"] == "applied"; });

  fs::path secret = r.rules.path / "shadow";
  write_file(secret, "root:$y$j9T$hushhushhush:19000:0:99999:7:::\n");
  fs::permissions(secret, fs::perms(0640));
  fs::create_symlink(secret, r.d / "95-x.rules");
  refused_with((r.d / "95-x.rules").string() + ":1: not a rule (");
  for (const std::string& seen :
       {r.fw.ask("show rules-source"), r.fw.ask("show status json"), r.ctl("status"), r.fw.log()})
    BOOST_TEST(seen.find("hush") == std::string::npos, seen);
  fs::remove(r.d / "95-x.rules");
  BOOST_TEST_REQUIRE(wait_until([&] { return r.source()["result"] == "applied"; }, 10),
                     r.source().dump());

  fs::path big = r.d / "40-big.rules";
  write_file(big, "");
  fs::resize_file(big, 1ull << 30);  // sparse: no disk, 1 GiB to read
  refused_with(big.string() + " is larger than rules-max-size (16777216 bytes): refused");
  BOOST_TEST(r.fw.ask("version").find("xdpfw-host ") == 0u);
  BOOST_TEST(r.dropped(5000));
  fs::remove(big);
  r.until([&] { return r.source()["result"] == "applied"; });
}

// A ConfigMap as kubelet mounts it: read-only, its folders mode 0777. The
// read-only mount is what makes them safe: the same folders writable are
// refused.
BOOST_AUTO_TEST_CASE(a_read_only_configmap_with_open_folders_is_trusted) {
  TempDir vol;
  must("mount -t tmpfs -o mode=0777 xdpfw-cm " + quote(vol.path.string()));
  struct Unmount {
    fs::path at;
    ~Unmount() { shell("umount -l " + quote(at.string()) + " 2>&1"); }
  } unmount{vol.path};
  fs::create_directories(vol.path / "..2026_12_07_10_00_00.1");
  write_file(vol.path / "..2026_12_07_10_00_00.1" / "fw.rules",
             "prio 10 proto udp dport 5000 action drop\n");
  fs::permissions(vol.path / "..2026_12_07_10_00_00.1", fs::perms(0777));
  fs::create_directory_symlink("..2026_12_07_10_00_00.1", vol.path / "..data");
  fs::create_symlink("..data/fw.rules", vol.path / "fw.rules");
  std::string why;
  try {
    xdpfw::read_rules_source(vol.path.string());
  } catch (const std::exception& e) {
    why = e.what();
  }
  BOOST_TEST(why.find("can be written by every user (mode 0777)") != std::string::npos, why);
  must("mount -o remount,ro,bind " + quote(vol.path.string()));
  Host h("interfaces = fwt*\nrules = " + vol.path.string(), "");
  BOOST_TEST(h.source()["result"] == "applied", h.source().dump());
  BOOST_TEST(h.dropped(5000));
  BOOST_TEST(h.passes(5001));
}

// A rules file (not a directory) changed while the agent was stopped wins
// over the resumed state at its start; a file renamed over is seen.
BOOST_AUTO_TEST_CASE(a_file_changed_while_stopped_wins_at_start) {
  Host h("interfaces = fwt*\nwatch-delay = 100ms", "prio 10 proto udp dport 5000 action drop\n");
  BOOST_TEST(h.dropped(5000));
  replace_file(h.fw.dir / "rules.conf", "prio 10 proto udp dport 5001 action drop\n");
  h.until([&] { return h.passes(5000); });
  h.fw.crash();  // the state and the pins say: dport 5001
  write_file(h.fw.dir / "rules.conf", "prio 10 proto udp dport 5000 action drop\n");
  h.fw.start_attached("fwt0");
  BOOST_TEST(h.dropped(5000));
  BOOST_TEST(h.passes(5001));
  BOOST_TEST(h.fw.log().find("changed while the agent was stopped") != std::string::npos,
             h.fw.log());
}

// A replace on trial (xdpfw-ctl replace --confirm N FILE): not confirmed,
// the previous rules come back by themselves; confirmed, the new ones stay.
BOOST_AUTO_TEST_CASE(replace_confirm_reverts_unless_confirmed) {
  Host h("interfaces = fwt*\nwatch-rules = no", "prio 10 proto udp dport 5000 action drop\n");
  fs::path next = h.fw.dir / "next.rules";
  write_file(next, "prio 10 proto udp dport 5001 action drop\n");
  std::string out = h.ctl("replace --confirm 2 " + next.string());
  BOOST_TEST(out.find("replaced: 1 rule(s); send 'rule confirm' within 2 s") == 0u, out);
  // xdpfw-ctl status shows the trial while it runs (asked first: checking
  // that a port is dropped takes a second of the two).
  json st = json::parse(h.ctl("status --json"));
  BOOST_TEST(st["trial"]["on"] == true, st.dump());
  BOOST_TEST(st["trial"]["reverts_to"] == 1);
  BOOST_TEST(st["trial"]["seconds_left"].get<int>() >= 1);
  BOOST_TEST(st["trial"]["seconds_left"].get<int>() <= 2);
  BOOST_TEST(h.ctl("status").find(" s left: unless 'rule confirm', the previous 1 rule(s) come "
                                  "back\n") != std::string::npos);
  BOOST_TEST(h.passes(5000));  // the new set runs
  BOOST_TEST(h.dropped(5001));
  // Not confirmed: back by itself (the agent looks every 100 ms).
  h.until([&] { return h.dropped(5000); });
  BOOST_TEST(h.passes(5001));
  BOOST_TEST(h.ctl("status").find("\ntrial none\n") != std::string::npos);
  BOOST_TEST(h.fw.log().find("not confirmed in time: the previous 1 rule(s) are back") !=
             std::string::npos);
  BOOST_TEST(h.ctl("confirm").find("nothing to confirm") != std::string::npos);

  // Confirmed: it stays past its time.
  out = h.ctl("replace --confirm 2 " + next.string());
  BOOST_TEST(out.find("replaced: 1 rule(s)") == 0u, out);
  BOOST_TEST(h.ctl("confirm").find("confirmed: the 1 rule(s) stay") == 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  BOOST_TEST(h.passes(5000));
  BOOST_TEST(h.dropped(5001));
  BOOST_TEST(h.ctl("replace --confirm x " + next.string()).find("--confirm takes a number") !=
             std::string::npos);
  BOOST_TEST(h.fw.ask("rule replace confirm 0 <<E\nproto tcp action drop\nE")
                 .find("ERR: rule replace: expected") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
