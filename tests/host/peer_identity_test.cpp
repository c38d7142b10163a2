// identify_peer with the kernel's answers injected: a failed SO_PEERCRED or
// SO_PEERGROUPS must never make a client an administrator.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstring>

#include "control_server.hpp"

using xdpfw::host::ClientInfo;
using xdpfw::host::identify_peer;

namespace {

// What the fake kernel answers.
struct Peer {
  bool cred_ok = true;
  ucred cred{4242, 1000, 1000};
  int groups_errno = 0;  // 0: answers `groups`
  std::vector<gid_t> groups;
};
Peer peer;

int fake_getsockopt(int, int level, int name, void* value, socklen_t* len) {
  if (level != SOL_SOCKET) return errno = ENOPROTOOPT, -1;
  if (name == SO_PEERCRED) {
    if (!peer.cred_ok) return errno = EBADF, -1;
    std::memcpy(value, &peer.cred, sizeof peer.cred);
    *len = sizeof peer.cred;
    return 0;
  }
  if (name == SO_PEERGROUPS) {
    if (peer.groups_errno) return errno = peer.groups_errno, -1;
    socklen_t need = static_cast<socklen_t>(peer.groups.size() * sizeof(gid_t));
    if (*len < need) {
      *len = need;
      return errno = ERANGE, -1;
    }
    if (need) std::memcpy(value, peer.groups.data(), need);
    *len = need;
    return 0;
  }
  return errno = ENOPROTOOPT, -1;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(peer_identity)

BOOST_AUTO_TEST_CASE(failed_peercred_is_read_only_not_root) {
  peer = Peer{};
  peer.cred_ok = false;
  ClientInfo c = identify_peer(-1, 0, fake_getsockopt);  // socket group root's
  BOOST_TEST(!c.admin);
  BOOST_TEST(c.uid == static_cast<uid_t>(-1));  // not 0: unknown
  BOOST_TEST(c.pid == 0);
}

BOOST_AUTO_TEST_CASE(root_and_the_agents_user_are_admins) {
  peer = Peer{};
  peer.cred.uid = 0;
  BOOST_TEST(identify_peer(-1, 777, fake_getsockopt).admin);
  peer.cred.uid = geteuid();
  BOOST_TEST(identify_peer(-1, 777, fake_getsockopt).admin);
}

BOOST_AUTO_TEST_CASE(group_by_primary_or_supplementary_gid) {
  peer = Peer{};
  BOOST_TEST(identify_peer(-1, 1000, fake_getsockopt).admin);  // primary gid
  peer.groups = {5, 6, 777};
  ClientInfo c = identify_peer(-1, 777, fake_getsockopt);
  BOOST_TEST(c.admin);
  BOOST_TEST(c.uid == 1000u);
  BOOST_TEST(c.pid == 4242);
  peer.groups = {5, 6};
  BOOST_TEST(!identify_peer(-1, 777, fake_getsockopt).admin);
}

BOOST_AUTO_TEST_CASE(more_groups_than_the_first_buffer_holds) {
  peer = Peer{};
  for (gid_t g = 10000; g < 10300; ++g) peer.groups.push_back(g);
  peer.groups.push_back(777);  // the 301st
  BOOST_TEST(identify_peer(-1, 777, fake_getsockopt).admin);
}

BOOST_AUTO_TEST_CASE(failed_peergroups_counts_no_group) {
  peer = Peer{};
  peer.groups = {777};
  peer.groups_errno = ENOPROTOOPT;  // an old kernel
  ClientInfo c = identify_peer(-1, 777, fake_getsockopt);
  BOOST_TEST(!c.admin);
  BOOST_TEST(c.uid == 1000u);  // still known: it is served read-only
}

BOOST_AUTO_TEST_SUITE_END()
