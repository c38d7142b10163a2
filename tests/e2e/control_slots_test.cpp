// The control socket's slots (docs/SECURITY.md, issue 32): a group member
// cannot take the slots kept for root nor more than its uid's share, a full
// socket closes its longest-idle client to let a new one in, and a refused
// client always reads why (never a reset or a broken pipe). The real agent,
// real xdpfw-ctl; group members are uid 65534 (and 65533) with the socket's
// group, no users created.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "support/firewall_agent.hpp"

using namespace xdpfw::test;

namespace {

const gid_t nogroup = 65534;

// Runs xdpfw-ctl ARGS as root; its exit status, stderr in *err.
int ctl(const fs::path& sock, const std::string& args, std::string* err) {
  static int n = 0;
  fs::path e = fs::path("/tmp") /
               ("xdpfw-ctl-slots-" + std::to_string(getpid()) + "-" + std::to_string(n++));
  int st = 0;
  shell("XDPFW_SOCKET=" + quote(sock.string()) + " timeout 20 " + XDPFW_CTL_BIN + " " + args +
            " >/dev/null 2>" + e.string(),
        &st);
  *err = read_file(e);
  fs::remove(e);
  return st;
}

// N connections as UID with the socket's group (nogroup) as its only group.
std::vector<std::unique_ptr<RawClient>> connect_as(uid_t uid, const fs::path& sock, int n) {
  std::vector<gid_t> groups(static_cast<size_t>(std::max(getgroups(0, nullptr), 0)));
  if (!groups.empty())
    groups.resize(static_cast<size_t>(getgroups(int(groups.size()), groups.data())));
  BOOST_TEST_REQUIRE(setgroups(1, &nogroup) == 0);
  BOOST_TEST_REQUIRE(setegid(nogroup) == 0);
  BOOST_TEST_REQUIRE(seteuid(uid) == 0);
  std::vector<std::unique_ptr<RawClient>> out;
  for (int i = 0; i < n; ++i) out.push_back(std::make_unique<RawClient>(sock));
  BOOST_TEST_REQUIRE(seteuid(0) == 0);
  BOOST_TEST_REQUIRE(setegid(0) == 0);
  BOOST_TEST_REQUIRE(setgroups(groups.size(), groups.data()) == 0);
  for (auto& c : out) BOOST_TEST_REQUIRE(c->connected);
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

// What a client has been sent so far, without waiting; *end: 0 open,
// 1 closed (EOF), or the errno that ended it (ECONNRESET).
std::string take(RawClient& c, int* end) {
  fcntl(c.fd, F_SETFL, O_NONBLOCK);
  std::string out;
  char buf[4096];
  *end = 0;
  for (;;) {
    ssize_t n = read(c.fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, size_t(n));
      continue;
    }
    if (n == 0) *end = 1;
    if (n < 0 && errno != EAGAIN) *end = errno;
    return out;
  }
}

// One request and its reply (up to the empty line that ends it).
std::string ask(RawClient& c, const std::string& line) {
  std::string text = line + "\n", out;
  BOOST_TEST_REQUIRE(send(c.fd, text.data(), text.size(), MSG_NOSIGNAL) == ssize_t(text.size()));
  int end = 0;
  BOOST_TEST(wait_until([&] {
    out += take(c, &end);
    return out.ends_with("\n\n") || end != 0;
  }));
  return out;
}

// One group member (uid 65534) opens N idle connections on FW: REFUSED of
// them must be told REASON (no silent close, no reset), the others held
// silent; root's xdpfw-ctl status works while they are held.
void greedy_member(FirewallAgent& fw, int n, size_t refused_n, const std::string& reason) {
  auto greedy = connect_as(65534, fw.sock, n);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return count(fw.log(), "uid 65534 gid 65534 connected") == size_t(n); }),
      fw.log());
  std::vector<std::string> got(greedy.size());
  std::vector<int> end(greedy.size());
  auto refused = [&] {
    size_t k = 0;
    for (size_t i = 0; i < greedy.size(); ++i) {
      if (end[i] == 0) got[i] += take(*greedy[i], &end[i]);
      k += end[i] != 0;
    }
    return k;
  };
  BOOST_TEST(wait_until([&] { return refused() == refused_n; }), refused());
  for (size_t i = 0; i < greedy.size(); ++i) {
    if (end[i] == 0) {
      BOOST_TEST(got[i] == "");  // held, idle
      continue;
    }
    BOOST_TEST(end[i] == 1, "connection " << i << " ended by errno " << end[i]);
    BOOST_TEST(got[i] == "ERR: " + reason + "; try again later\n\n", got[i]);
  }
  std::string err;
  BOOST_TEST(ctl(fw.sock, "status", &err) == 0, err);
  BOOST_TEST(ctl(fw.sock, "status", &err) == 0, err);
  BOOST_TEST(refused() == refused_n);  // none of the held ones was closed
}

}  // namespace

BOOST_AUTO_TEST_SUITE(control_slots)

// Default limits: one member's 100 idle connections, 64 held
// (max-clients-per-uid), 36 told so.
BOOST_AUTO_TEST_CASE(a_group_member_is_capped_per_uid) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "socket-group = nogroup\n");
  fw.start();
  greedy_member(fw, 100, 36,
                "too many clients of uid 65534 (limit 64 per uid, max-clients-per-uid)");
}

// max-clients = 40: a member gets at most 38 (the per-uid cap is never more
// than max-clients less the 2 slots kept for root), root still gets in.
BOOST_AUTO_TEST_CASE(a_group_member_cannot_lock_root_out) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "socket-group = nogroup\nmax-clients = 40\n");
  fw.start();
  greedy_member(fw, 60, 22,
                "too many clients (limit 38 for the socket's group; the other 2 are kept for "
                "root)");
}

BOOST_AUTO_TEST_CASE(max_clients_per_uid_caps_each_member) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "socket-group = nogroup\nmax-clients-per-uid = 5\n");
  fw.start();
  auto first = connect_as(65534, fw.sock, 8);
  auto second = connect_as(65533, fw.sock, 2);
  BOOST_TEST_REQUIRE(wait_until([&] {
                       std::string l = fw.log();
                       return count(l, "refusing client") == 3 &&
                              count(l, "uid 65533 gid 65534 connected") == 2;
                     }),
                     fw.log());
  std::vector<std::string> got(first.size());
  std::vector<int> end(first.size());
  auto refused = [&] {
    size_t n = 0;
    for (size_t i = 0; i < first.size(); ++i) {
      if (end[i] == 0) got[i] += take(*first[i], &end[i]);
      n += end[i] != 0;
    }
    return n;
  };
  BOOST_TEST(wait_until([&] { return refused() == 3; }), refused());
  for (size_t i = 0; i < first.size(); ++i)
    BOOST_TEST(got[i] == (end[i] ? "ERR: too many clients of uid 65534 (limit 5 per uid, "
                                   "max-clients-per-uid); try again later\n\n"
                                 : ""));
  for (auto& c : second) BOOST_TEST(ask(*c, "show status").find("ERR") == std::string::npos);
  std::string err;
  BOOST_TEST(ctl(fw.sock, "status", &err) == 0, err);
}

// max-clients = 3, all taken by idle clients: a newcomer gets in, and the
// one idle the longest is closed with an ERR line saying why; the others
// are served on.
BOOST_AUTO_TEST_CASE(a_full_socket_sheds_its_longest_idle_client) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "max-clients = 3\n");
  fw.start();
  RawClient c1(fw.sock), c2(fw.sock), c3(fw.sock);
  for (RawClient* c : {&c1, &c2, &c3}) {
    BOOST_TEST_REQUIRE(c->connected);
    BOOST_TEST_REQUIRE(ask(*c, "show status").find("ERR") == std::string::npos);
  }
  std::string err;
  BOOST_TEST(ctl(fw.sock, "status", &err) == 0, err);
  std::string told;
  BOOST_TEST(c1.read_until_closed(told, 20));
  BOOST_TEST(told.starts_with("ERR: closed to make room for a new client: too many clients "
                              "(limit 3), and this connection was the longest idle ("),
             told);
  BOOST_TEST(told.ends_with(" s); connection closed\n\n"), told);
  BOOST_TEST(ask(c2, "show status").find("ERR") == std::string::npos);
  BOOST_TEST(ask(c3, "show status").find("ERR") == std::string::npos);
  BOOST_TEST(fw.log().find("to make room for client pid") != std::string::npos, fw.log());
}

// Whom a newcomer pushes out: an idle client of its own uid before the
// longer-idle ones of others, and never root's. max-clients = 4 (one slot
// root's): idle root, then member 65533, then two of member 65534 (in
// that order); a third of 65534 closes the first of its own.
BOOST_AUTO_TEST_CASE(a_newcomer_sheds_its_own_uid_first_and_never_root) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "socket-group = nogroup\nmax-clients = 4\n");
  fw.start();
  RawClient root(fw.sock);
  BOOST_TEST_REQUIRE(root.connected);
  auto other = connect_as(65533, fw.sock, 1);
  auto mine = connect_as(65534, fw.sock, 2);
  for (RawClient* c : {&root, other[0].get(), mine[0].get(), mine[1].get()})
    BOOST_TEST_REQUIRE(ask(*c, "show status").find("ERR") == std::string::npos);
  auto late = connect_as(65534, fw.sock, 1);
  BOOST_TEST(ask(*late[0], "show status").find("ERR") == std::string::npos);
  std::string told;
  BOOST_TEST(mine[0]->read_until_closed(told, 20));
  BOOST_TEST(told.starts_with("ERR: closed to make room for a new client: too many clients"), told);
  for (RawClient* c : {&root, other[0].get(), mine[1].get()})
    BOOST_TEST(ask(*c, "show status").find("ERR") == std::string::npos);
}

// Every slot busy (each client is in the middle of a line): nothing can be
// shed, so a newcomer is refused, and it reads the ERR line whatever it
// does: a request sent after the refusal meets no closed socket (EPIPE),
// its input is read before the close (no reset), and xdpfw-ctl prints the
// refusal and exits 1, never "the agent went away" (exit 3).
BOOST_AUTO_TEST_CASE(a_refused_client_reads_why) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "max-clients = 2\n");
  fw.start();
  RawClient b1(fw.sock), b2(fw.sock);
  for (RawClient* c : {&b1, &b2}) {
    BOOST_TEST_REQUIRE(c->connected);
    BOOST_TEST_REQUIRE(send(c->fd, "show sta", 8, MSG_NOSIGNAL) == 8);
  }
  BOOST_TEST_REQUIRE(wait_until([&] { return count(fw.log(), "uid 0 gid 0 connected") == 2; }));
  const std::string refusal = "ERR: too many clients (limit 2); try again later\n\n";
  {
    RawClient late(fw.sock);
    BOOST_TEST_REQUIRE(late.connected);
    std::string out;
    int end = 0;
    BOOST_TEST(wait_until([&] {
      out += take(late, &end);
      return end != 0;
    }));
    BOOST_TEST(end == 1);  // the agent's side shut: EOF after the reason
    BOOST_TEST(out == refusal);
    const std::string req = "status\n";
    BOOST_TEST(send(late.fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()),
               std::strerror(errno));
    shutdown(late.fd, SHUT_WR);
    pollfd p{late.fd, POLLIN, 0};
    BOOST_TEST(poll(&p, 1, 20000) == 1);
    char buf[64];
    BOOST_TEST(read(late.fd, buf, sizeof buf) == 0, std::strerror(errno));  // not ECONNRESET
  }
  for (int i = 0; i < 20; ++i) {
    std::string err;
    BOOST_TEST(ctl(fw.sock, "status", &err) == 1, err);
    BOOST_TEST(err == "xdpfw-ctl: too many clients (limit 2); try again later\n", err);
  }
  BOOST_TEST(send(b1.fd, "tus\n", 4, MSG_NOSIGNAL) == 4);  // the busy ones are served on
  std::string out;
  int end = 0;
  BOOST_TEST(wait_until([&] {
    out += take(b1, &end);
    return out.ends_with("\n\n") || end != 0;
  }));
  BOOST_TEST(out.find("ERR") == std::string::npos, out);
}

BOOST_AUTO_TEST_SUITE_END()
