// libnl_link_monitor.cpp: see libnl_link_monitor.hpp.
#include "libnl_link_monitor.hpp"

#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace xdpfw::netlink {

LibnlLinkMonitor::LibnlLinkMonitor(boost::asio::io_context& io, size_t rcvbuf,
                                   std::function<void(const std::string&)> warn)
    : fd_(io), warn_(std::move(warn)) {
  sock_ = nl_socket_alloc();
  if (!sock_) throw std::runtime_error("netlink: cannot allocate a socket");
  nl_socket_disable_seq_check(sock_);  // multicast events carry no sequence
  nl_socket_modify_cb(sock_, NL_CB_VALID, NL_CB_CUSTOM, &LibnlLinkMonitor::on_valid, this);
  nl_socket_modify_cb(sock_, NL_CB_FINISH, NL_CB_CUSTOM, &LibnlLinkMonitor::on_finish, this);
  int err = nl_connect(sock_, NETLINK_ROUTE);
  if (err < 0) {
    nl_socket_free(sock_);
    throw std::runtime_error(std::string("netlink: cannot connect: ") + nl_geterror(err));
  }
  nl_socket_add_membership(sock_, RTNLGRP_LINK);
  nl_socket_set_nonblocking(sock_);
  int fd = nl_socket_get_fd(sock_);
  int size = static_cast<int>(rcvbuf);
  // FORCE passes net.core.rmem_max where we may (CAP_NET_ADMIN).
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  fd_.assign(fd);
}

LibnlLinkMonitor::~LibnlLinkMonitor() {
  boost::system::error_code ec;
  fd_.cancel(ec);
  fd_.release();  // libnl closes it
  nl_socket_free(sock_);
}

void LibnlLinkMonitor::start(LinkHandler handler) {
  handler_ = std::move(handler);
  request_dump();
  wait_readable();
}

void LibnlLinkMonitor::request_dump() {
  if (dump_seq_) {
    dump_wanted_ = true;  // the kernel runs one dump at a time
    return;
  }
  nl_msg* msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_DUMP);
  rtgenmsg gen{};
  gen.rtgen_family = AF_UNSPEC;
  if (!msg || nlmsg_append(msg, &gen, sizeof gen, NLMSG_ALIGNTO) < 0) {
    nlmsg_free(msg);
    dump_wanted_ = true;
    return;
  }
  nl_complete_msg(sock_, msg);
  uint32_t seq = nlmsg_hdr(msg)->nlmsg_seq;
  int err = nl_send(sock_, msg);
  nlmsg_free(msg);
  if (err < 0) {
    dump_wanted_ = true;  // retried after the next read
    return;
  }
  dump_seq_ = seq;
  dump_valid_ = true;
  dump_wanted_ = false;
  seen_in_dump_.clear();
}

void LibnlLinkMonitor::wait_readable() {
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this](boost::system::error_code ec) {
                   if (ec) return;
                   drain();
                   wait_readable();
                 });
}

void LibnlLinkMonitor::drain() {
  for (;;) {
    int err = nl_recvmsgs_default(sock_);
    if (err >= 0) continue;
    if (err == -NLE_AGAIN || err == -NLE_INTR) break;
    // Anything else (ENOBUFS above all) means events may be lost: dump the
    // current links again and compare them with what we know.
    if (warn_)
      warn_(std::string("netlink: link events lost (") + nl_geterror(err) +
            "); resynchronising with a full dump");
    dump_valid_ = false;
    dump_wanted_ = true;
  }
  if (dump_wanted_ && !dump_seq_) request_dump();
}

int LibnlLinkMonitor::on_valid(nl_msg* msg, void* self) {
  auto* m = static_cast<LibnlLinkMonitor*>(self);
  m->msg_type_ = nlmsg_hdr(msg)->nlmsg_type;
  m->msg_seq_ = nlmsg_hdr(msg)->nlmsg_seq;
  if (m->msg_type_ == RTM_NEWLINK || m->msg_type_ == RTM_DELLINK)
    nl_msg_parse(msg, &LibnlLinkMonitor::on_object, self);
  return NL_OK;
}

int LibnlLinkMonitor::on_finish(nl_msg* msg, void* self) {
  auto* m = static_cast<LibnlLinkMonitor*>(self);
  if (m->dump_seq_ && nlmsg_hdr(msg)->nlmsg_seq == m->dump_seq_) m->dump_done();
  return NL_OK;
}

void LibnlLinkMonitor::on_object(nl_object* obj, void* self) {
  auto* m = static_cast<LibnlLinkMonitor*>(self);
  auto* link = reinterpret_cast<rtnl_link*>(obj);
  LinkInfo l;
  l.ifindex = rtnl_link_get_ifindex(link);
  const char* name = rtnl_link_get_name(link);
  const char* kind = rtnl_link_get_type(link);
  l.name = name ? name : "";
  l.kind = kind ? kind : "";
  unsigned flags = rtnl_link_get_flags(link);
  l.up = flags & IFF_UP;
  l.running = flags & IFF_RUNNING;
  if (l.ifindex <= 0) return;
  // Both the dump's answers and events during it are news of this moment.
  if (m->msg_type_ == RTM_DELLINK) {
    m->seen_in_dump_.erase(l.ifindex);
    m->remove(l.ifindex);
  } else {
    if (m->dump_seq_) m->seen_in_dump_.insert(l.ifindex);
    m->upsert(l);
  }
}

void LibnlLinkMonitor::upsert(const LinkInfo& l) {
  auto it = links_.find(l.ifindex);
  if (it == links_.end()) {
    links_[l.ifindex] = l;
    handler_(LinkEvent{LinkEvent::Type::added, l, std::nullopt});
    return;
  }
  if (it->second == l) return;  // statistics and the like: nothing we track
  LinkEvent ev{LinkEvent::Type::changed, l, std::nullopt};
  if (it->second.name != l.name) ev.old_name = it->second.name;
  it->second = l;
  handler_(ev);
}

void LibnlLinkMonitor::remove(int ifindex) {
  auto it = links_.find(ifindex);
  if (it == links_.end()) return;
  LinkInfo gone = it->second;
  links_.erase(it);
  handler_(LinkEvent{LinkEvent::Type::removed, gone, std::nullopt});
}

void LibnlLinkMonitor::dump_done() {
  dump_seq_ = 0;
  if (dump_valid_) {
    // Links we knew that neither the dump nor an event during it showed
    // went away while we were deaf.
    std::vector<int> gone;
    for (const auto& [idx, l] : links_)
      if (!seen_in_dump_.count(idx)) gone.push_back(idx);
    for (int idx : gone) remove(idx);
  }
  seen_in_dump_.clear();
  if (dump_wanted_) request_dump();
}

}  // namespace xdpfw::netlink
