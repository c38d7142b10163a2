// The agent's own files as a root process must treat them: no symlink
// followed out of its folders, no folder someone else can write, pins
// private to root. Each case sets a trap a local user could set, then
// checks that the agent stayed out of it.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>

#include "support/firewall_agent.hpp"

using namespace xdpfw::test;

namespace {

uid_t nobody() {
  passwd* p = getpwnam("nobody");
  BOOST_TEST_REQUIRE(p != nullptr);
  return p->pw_uid;
}

// Starts the agent expecting a refusal; returns its log.
std::string refused_start(FirewallAgent& fw) {
  fw.start("", false);
  BOOST_TEST(fw.host->exit_code() == 1, fw.host->log());
  return fw.host->log();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(file_safety)

// A symlink where the event log goes, pointing at a file that does not
// exist yet: following it would create (and then fill) that file as root.
BOOST_AUTO_TEST_CASE(symlinked_log_file_is_not_followed) {
  NetNs ns;
  FirewallAgent fw(ns, "");
  fs::create_directories(fw.log_dir());
  chmod(fw.log_dir().c_str(), 0750);
  fs::path victim = fw.dir / "victim";
  fs::create_symlink(victim, fw.log_file());
  fw.start();
  BOOST_TEST(!fs::exists(victim));
  BOOST_TEST(fw.host->log().find("a symbolic link: refused") != std::string::npos, fw.host->log());
  BOOST_TEST(fw.ask("log reopen").find("a symbolic link: refused") != std::string::npos);
  BOOST_TEST(!fs::exists(victim));
  BOOST_TEST(fw.ask("show stats").find("log_write_errors 2") != std::string::npos);
}

// A symlink planted where the agent writes its state: the old predictable
// temporary name of rules-file.applied, pointing at a file of someone's.
BOOST_AUTO_TEST_CASE(state_files_are_not_followed) {
  NetNs ns;
  FirewallAgent fw(ns, "", "proto udp dport 53 action pass\n");
  fs::path state = fw.dir / "state";
  fs::create_directories(state);
  chmod(state.c_str(), 0700);
  fs::path victim = fw.dir / "victim";
  write_file(victim, "precious\n");
  fs::create_symlink(victim, state / "rules-file.applied.tmp");
  fs::create_symlink(victim, state / "rules.journal");
  fw.start();
  fw.ask("rule add proto tcp dport 22 action drop");
  fw.ask("rule flush");
  BOOST_TEST(read_file(victim) == "precious\n");
  BOOST_TEST(fs::is_regular_file(fs::symlink_status(state / "rules-file.applied")));
}

BOOST_AUTO_TEST_CASE(state_dir_writable_by_others_is_refused) {
  NetNs ns;
  FirewallAgent fw(ns, "");
  fs::path state = fw.dir / "state";
  fs::create_directories(state);
  chmod(state.c_str(), 0777);
  std::string log = refused_start(fw);
  BOOST_TEST(log.find("state-dir " + state.string() +
                      " can be written by every user (mode 0777): refused") != std::string::npos,
             log);
}

BOOST_AUTO_TEST_CASE(log_dir_of_another_user_is_refused) {
  NetNs ns;
  FirewallAgent fw(ns, "");
  fs::create_directories(fw.log_dir());
  BOOST_TEST_REQUIRE(chown(fw.log_dir().c_str(), nobody(), 0) == 0);
  std::string log = refused_start(fw);
  BOOST_TEST(
      log.find("log-dir " + fw.log_dir().string() + " is owned by uid " + std::to_string(nobody()) +
               ", neither root nor the agent's user") != std::string::npos,
      log);
}

// The pin folder holds the live maps: whoever may write it may swap them.
BOOST_AUTO_TEST_CASE(hostile_pin_folders_are_refused) {
  NetNs ns;
  {
    FirewallAgent fw(ns, "");
    fs::path pins = fw.dir / "bpf/xdpfw";
    fs::create_directories(pins);
    BOOST_TEST_REQUIRE(chown(pins.c_str(), nobody(), 0) == 0);
    std::string log = refused_start(fw);
    BOOST_TEST(log.find("pin-root " + pins.string() + " is owned by uid " +
                        std::to_string(nobody())) != std::string::npos,
               log);
  }
  {
    FirewallAgent fw(ns, "");
    fs::path maps = fw.dir / "bpf/xdpfw/maps";
    fs::create_directories(maps);
    chmod((fw.dir / "bpf/xdpfw").c_str(), 0700);
    chmod(maps.c_str(), 0777);
    std::string log = refused_start(fw);
    BOOST_TEST(log.find("pin-root " + maps.string() +
                        " can be written by every user (mode 0777): refused") != std::string::npos,
               log);
  }
  {
    // Made by the agent: 0700.
    FirewallAgent fw(ns, "");
    fw.start();
    struct stat st {};
    BOOST_TEST_REQUIRE(stat((fw.dir / "bpf/xdpfw/maps").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0700u);
    BOOST_TEST_REQUIRE(stat((fw.dir / "bpf/xdpfw").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 07777) == 0700u);
  }
}

// Where bpffs is missing the agent mounts it on /sys/fs/bpf, mode 0700 (in
// the namespace's own mount namespace here: ip netns exec gives the agent a
// fresh /sys without bpffs, gone with the agent).
BOOST_AUTO_TEST_CASE(bpffs_is_mounted_private) {
  NetNs ns;
  FirewallAgent fw(ns, "pin-root = /sys/fs/bpf/xdpfw-test");
  fw.start();
  struct stat st {};
  fs::path bpffs = "/proc/" + std::to_string(fw.host->pid()) + "/root/sys/fs/bpf";
  BOOST_TEST_REQUIRE(stat(bpffs.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0700u);
}

BOOST_AUTO_TEST_SUITE_END()
