// libnl_link_monitor.hpp: links from the kernel through libnl-3 (route) on
// an Asio loop: a dump of the current links, then RTM_NEWLINK/RTM_DELLINK.
// When the socket's receive buffer overflows (ENOBUFS) events were lost: it
// dumps again and reconciles, reporting what changed meanwhile.
#pragma once

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <boost/asio.hpp>
#include <set>

#include "link_monitor.hpp"

struct nl_sock;
struct nl_msg;
struct nl_object;

namespace xdpfw::netlink {

class LibnlLinkMonitor : public LinkMonitor {
 public:
  // rcvbuf: the socket's receive buffer in bytes (SO_RCVBUFFORCE when
  // allowed). warn: told when events were lost and a resync starts.
  LibnlLinkMonitor(boost::asio::io_context& io, size_t rcvbuf,
                   std::function<void(const std::string&)> warn = {});
  ~LibnlLinkMonitor() override;

  void start(LinkHandler handler) override;
  const std::map<int, LinkInfo>& links() const override { return links_; }

 private:
  static int on_valid(nl_msg* msg, void* self);
  static int on_finish(nl_msg* msg, void* self);
  static void on_object(nl_object* obj, void* self);
  void request_dump();
  void wait_readable();
  void drain();
  void upsert(const LinkInfo& l);
  void remove(int ifindex);
  void dump_done();

  nl_sock* sock_ = nullptr;
  boost::asio::posix::stream_descriptor fd_;
  LinkHandler handler_;
  std::function<void(const std::string&)> warn_;
  std::map<int, LinkInfo> links_;
  int msg_type_ = 0;
  uint32_t msg_seq_ = 0;
  uint32_t dump_seq_ = 0;     // the dump in flight, 0 if none
  bool dump_valid_ = false;   // no overflow since it started: it may reconcile
  bool dump_wanted_ = false;  // another dump after the one in flight
  std::set<int> seen_in_dump_;
};

}  // namespace xdpfw::netlink
