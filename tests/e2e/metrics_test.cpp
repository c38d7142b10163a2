// The HTTP metrics listener ([host] metrics-listen) of the real agent, in a
// test namespace on its own loopback: real traffic, then GET /metrics with
// curl and with a raw socket client (status, content type, the rule
// counters against 'rule list json', every 'show stats' value against its
// series, 404, 405, oversized requests, keep-alive, the connection cap, the
// read timeout), promtool on the scraped text, a reload moving the
// listener, and a real Prometheus server scraping it.
#include <netinet/tcp.h>
#include <poll.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

constexpr uint16_t metrics_port = 9477;

// A response as read off the wire.
struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// Splits one response off the front of raw; false while it is incomplete.
bool take_response(std::string& raw, HttpResponse& r, bool head = false) {
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::istringstream lines(raw.substr(0, end));
  std::string line;
  std::getline(lines, line);
  r = HttpResponse{};
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("^HTTP/1\\.[01] ([0-9]{3}) "))) return false;
  r.status = std::stoi(m[1]);
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  size_t len =
      head || !r.headers.count("content-length") ? 0 : std::stoul(r.headers["content-length"]);
  if (raw.size() < end + 4 + len) return false;
  r.body = raw.substr(end + 4, len);
  raw.erase(0, end + 4 + len);
  return true;
}

// A TCP client whose socket lives in the namespace: sends what the test
// says, reads responses or until the server closes.
struct RawHttp {
  RawHttp(const NetNs& ns, const char* addr = "127.0.0.1", uint16_t port = metrics_port) {
    int family = std::string(addr).find(':') == std::string::npos ? AF_INET : AF_INET6;
    fd = ns.socket_in(family, SOCK_STREAM);
    sockaddr_storage ss;
    socklen_t len = sockaddr_of(family, addr, port, ss);
    connected = connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  }
  ~RawHttp() { close(fd); }
  bool send_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += size_t(n);
    }
    return true;
  }
  // Reads what is there within the deadline; false once the server closed.
  bool pump(int ms) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return true;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    raw.append(buf, size_t(n));
    return true;
  }
  bool response(HttpResponse& r, bool head = false) {
    bool open = true;
    wait_until([&] { return take_response(raw, r, head) || !(open = pump(100)); });
    return r.status != 0;
  }
  // True when the server closed the connection within the deadline.
  bool closed_by_server(int seconds = 30) {
    bool open = true;
    wait_until([&] { return !(open = pump(100)); }, seconds);
    return !open;
  }
  int fd = -1;
  bool connected = false;
  std::string raw;
};

// curl inside the namespace: the whole response, headers first (-i).
HttpResponse curl(const NetNs& ns, const std::string& args, int* status = nullptr) {
  int st = 0;
  std::string out = shell(
      "ip netns exec " + ns.name() + " curl -gsS -i --max-time 20 " + args + " 2>/dev/null", &st);
  if (status) *status = st;
  HttpResponse r;
  take_response(out, r, args.find("-I") != std::string::npos);
  return r;
}

// The samples of a Prometheus text exposition: "name{labels}" -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

// The series that carries a 'show stats' value; "" for a stat it does not know.
std::string series_of(const std::string& stat) {
  static const std::map<std::string, std::string> plain = {
      {"packets", "xdpfw_packets_total"},
      {"bytes", "xdpfw_bytes_total"},
      {"fragments", "xdpfw_fragments_total"},
      {"log_lines", "xdpfw_log_lines_total"},
      {"log_dropped", "xdpfw_log_lines_dropped_total"},
      {"log_write_errors", "xdpfw_log_errors_total"},
      {"log_reopens", "xdpfw_log_reopens_total"},
      {"ct_lookups", "xdpfw_ct_lookups_total"},
      {"audit_matches", "xdpfw_audit_matches_total"},
      {"audit_would_drop", "xdpfw_audit_would_drop_total"},
      {"set_lookups", "xdpfw_set_lookups_total"},
      {"set_members", "xdpfw_set_members_total"}};
  static const std::set<std::string> verdicts = {"match_drop",   "match_pass",     "default_drop",
                                                 "default_pass", "malformed_drop", "malformed_pass",
                                                 "mapped_drop",  "non_ip"};
  static const std::set<std::string> reasons = {
      "bad_l2",         "vlan_too_deep",   "ipv4_truncated",     "ipv4_bad_header",
      "ipv6_truncated", "ipv6_bad_header", "ipv6_ext_truncated", "ipv6_ext_too_many",
      "l4_truncated",   "l4_bad_header"};
  if (plain.count(stat)) return plain.at(stat);
  if (verdicts.count(stat)) return "xdpfw_verdicts_total{verdict=\"" + stat + "\"}";
  if (reasons.count(stat)) return "xdpfw_malformed_total{reason=\"" + stat + "\"}";
  if (stat.starts_with("events_")) return "xdpfw_events_total{outcome=\"" + stat.substr(7) + "\"}";
  if (stat == "ct_established" || stat == "ct_related")
    return "xdpfw_ct_found_total{state=\"" + stat.substr(3) + "\"}";
  if (stat.starts_with("rate_")) return "xdpfw_rate_total{outcome=\"" + stat.substr(5) + "\"}";
  if (stat.starts_with("rules_source_"))
    return "xdpfw_rules_source_changes_total{outcome=\"" + stat.substr(13) + "\"}";
  if (stat.starts_with("probes_"))
    return "xdpfw_tables_probed_total{tables=\"" + stat.substr(7) + "\"}";
  return "";
}

// promtool's verdict on a scrape: "" when it passes, else what it said.
std::string promtool_problems(const TempDir& dir, const std::string& text) {
  write_file(dir / "scrape.prom", text);
  int st = 0;
  std::string out =
      shell("promtool check metrics < " + quote((dir / "scrape.prom").string()) + " 2>&1", &st);
  return st == 0 && out.empty() ? "" : "promtool exit " + std::to_string(st) + ": " + out;
}

// Two namespaces, the agent on fwt0 with two rules and the listener on the
// firewall namespace's loopback; traffic sent so that the counters that
// matter are not zero: 30 datagrams dropped (rule 1), 20 passed (rule 2),
// one datagram in fragments, unmatched packets logged, one log reopen.
struct Scraped {
  Pair p;
  FirewallAgent fw{p.fw_ns, "interfaces = fwt*",
                   "id 1 proto udp dport 5000 action drop\nid 2 proto udp dport 5001 action pass\n",
                   "metrics-listen = 127.0.0.1:" + std::to_string(metrics_port) + "\n"};
  Scraped() {
    fw.start_attached("fwt0");
    int rx = bound(p.fw_ns, AF_INET, 5001), other = bound(p.fw_ns, AF_INET, 5002);
    int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
    int warm = 0;
    BOOST_TEST_REQUIRE(wait_until([&] {  // ARP first (unmatched: logged)
      send_to(tx, AF_INET, "198.18.0.1", 5002, 1);
      usleep(20000);
      return (warm += drain(other)) > 0;
    }));
    send_to(tx, AF_INET, "198.18.0.1", 5000, 30);
    send_to(tx, AF_INET, "198.18.0.1", 5001, 20);
    std::string big(4000, 'f');  // three fragments on a 1500-byte link
    sockaddr_storage ss;
    socklen_t len = sockaddr_of(AF_INET, "198.18.0.1", 5001, ss);
    BOOST_TEST_REQUIRE(sendto(tx, big.data(), big.size(), 0, reinterpret_cast<sockaddr*>(&ss),
                              len) == ssize_t(big.size()));
    int got = 0;
    BOOST_TEST_REQUIRE(wait_until([&] { return (got += drain(rx)) >= 21; }));
    BOOST_TEST(fw.ask("log reopen").find("ERR") == std::string::npos);
    close(rx);
    close(other);
    close(tx);
  }
  json rules() { return json::parse(fw.ask("rule list json")); }
  HttpResponse get(const std::string& path = "/metrics", const std::string& extra = "") {
    return curl(p.fw_ns, extra + " http://127.0.0.1:" + std::to_string(metrics_port) + path);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(scrape_matches_rules_and_stats) {
  Scraped s;
  HttpResponse r = s.get();
  BOOST_TEST_REQUIRE(r.status == 200, s.fw.host->log());
  BOOST_TEST(r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
  BOOST_TEST(promtool_problems(s.fw.dir, r.body) == "", r.body);
  // The rule counters are the rules' own (they change no more: the
  // traffic is over and nothing else goes to these ports).
  json rules = s.rules();
  BOOST_TEST_REQUIRE(rules.size() == 2u);
  BOOST_TEST(rules[0]["packets"] == 30);
  BOOST_TEST(rules[1]["packets"] == 21);  // 20 and the first fragment
  auto m = samples(r.body);
  for (const json& rule : rules) {
    std::string id = std::to_string(rule["id"].get<uint64_t>());
    BOOST_TEST_CONTEXT("rule " << id) {
      BOOST_TEST(m["xdpfw_rule_packets_total{id=\"" + id + "\"}"] == rule["packets"].get<double>());
      BOOST_TEST(m["xdpfw_rule_bytes_total{id=\"" + id + "\"}"] == rule["bytes"].get<double>());
    }
  }
  BOOST_TEST(m["xdpfw_rules"] == 2);
  BOOST_TEST(m["xdpfw_host_http_connections"] == 1);  // this one
  BOOST_TEST(m["xdpfw_host_plugins"] == 1);
  {
    Session admin(s.fw.sock);  // one control client, as root
    BOOST_TEST_REQUIRE(admin.command("version").find("xdpfw-host") == 0u);
    auto with_client = samples(s.get().body);
    BOOST_TEST(with_client["xdpfw_host_control_clients{level=\"admin\"}"] == 1);
    BOOST_TEST(with_client["xdpfw_host_control_clients{level=\"read_only\"}"] == 0);
    BOOST_TEST(with_client["xdpfw_host_control_watchers"] == 0);
    BOOST_TEST(with_client.count("xdpfw_host_control_held_bytes") == 1u);
  }
  // Every value of 'show stats' has its series, with the same value. The
  // two are read one after the other and a stray packet (IPv6 neighbour
  // discovery) may fall between them: read both again until they agree.
  json stats;
  std::string mismatch;
  bool agree = wait_until(
      [&] {
        stats = json::parse(s.fw.ask("show stats json"));
        m = samples(s.get().body);
        mismatch.clear();
        for (const auto& [stat, v] : stats.items()) {
          std::string series = series_of(stat);
          if (series.empty() || !m.count(series))
            mismatch += "stat " + stat + " has no series (" + series + "); ";
          else if (m[series] != v.get<double>())
            mismatch +=
                stat + " " + v.dump() + " != " + series + " " + std::to_string(m[series]) + "; ";
        }
        return mismatch.empty();
      },
      60);
  BOOST_TEST(agree, mismatch);
  BOOST_TEST(stats.size() >= 35u);
  // The three that had no series before, not zero here.
  BOOST_TEST(stats["fragments"].get<uint64_t>() >= 2u);
  BOOST_TEST(stats["log_reopens"] == 1);
  BOOST_TEST(m.count("xdpfw_log_lines_dropped_total") == 1u);
  BOOST_TEST(stats["match_drop"] == 30);
  BOOST_TEST(stats["events_sent"].get<uint64_t>() > 0u);
}

BOOST_AUTO_TEST_CASE(other_paths_methods_and_oversized_requests) {
  Scraped s;
  HttpResponse r = s.get("/");
  BOOST_TEST(r.status == 404);
  BOOST_TEST(s.get("/metricsx").status == 404);
  BOOST_TEST(s.get("/metrics?x=1").status == 200);
  r = s.get("/metrics", "-X POST");
  BOOST_TEST(r.status == 405);
  BOOST_TEST(r.headers["allow"] == "GET, HEAD");
  BOOST_TEST(s.get("/metrics", "-X DELETE").status == 405);
  r = s.get("/metrics", "-I");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body.empty());
  BOOST_TEST(std::stoul(r.headers["content-length"]) > 1000u);

  // Headers over 8 KiB: 431, and the connection is closed (the reply is
  // read before the close: nothing resets it).
  {
    RawHttp c(s.p.fw_ns);
    BOOST_TEST_REQUIRE(c.connected);
    BOOST_TEST(c.send_all("GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') +
                          "\r\n\r\n"));
    HttpResponse big;
    BOOST_TEST_REQUIRE(c.response(big));
    BOOST_TEST(big.status == 431);
    BOOST_TEST(c.closed_by_server());
  }
  // A body over 8 KiB: 413, closed.
  {
    RawHttp c(s.p.fw_ns);
    BOOST_TEST(c.send_all("POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" +
                          std::string(20000, 'b')));
    HttpResponse big;
    BOOST_TEST_REQUIRE(c.response(big));
    BOOST_TEST(big.status == 413);
    BOOST_TEST(c.closed_by_server());
  }
  // Not HTTP: 400, closed.
  {
    RawHttp c(s.p.fw_ns);
    BOOST_TEST(c.send_all("HELLO\r\n\r\n"));
    HttpResponse bad;
    BOOST_TEST_REQUIRE(c.response(bad));
    BOOST_TEST(bad.status == 400);
    BOOST_TEST(c.closed_by_server());
  }
  // Keep-alive: three requests on one connection, two of them pipelined.
  {
    RawHttp c(s.p.fw_ns);
    HttpResponse a, b, d;
    BOOST_TEST(c.send_all("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));
    BOOST_TEST_REQUIRE(c.response(a));
    BOOST_TEST(
        c.send_all("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: "
                   "t\r\n\r\n"));
    BOOST_TEST_REQUIRE(c.response(b));
    BOOST_TEST_REQUIRE(c.response(d));
    BOOST_TEST(a.status == 200);
    BOOST_TEST(b.status == 200);
    BOOST_TEST(d.status == 404);
  }
  // The agent's counters of all that.
  auto m = samples(s.get().body);
  BOOST_TEST(m["xdpfw_host_http_responses_total{code=\"404\"}"] == 3);
  BOOST_TEST(m["xdpfw_host_http_responses_total{code=\"405\"}"] == 2);
  BOOST_TEST(m["xdpfw_host_http_responses_total{code=\"431\"}"] == 1);
  BOOST_TEST(m["xdpfw_host_http_responses_total{code=\"413\"}"] == 1);
  BOOST_TEST(m["xdpfw_host_http_responses_total{code=\"400\"}"] == 1);
  BOOST_TEST(s.fw.ask("version").find("xdpfw-host") == 0u);  // the loop serves on
}

// 64 connections at most: the 65th is closed at once, and served again once
// a slot is free. A client that sends no complete request is closed after
// the read timeout (10 s) without a reply.
BOOST_AUTO_TEST_CASE(connection_cap_and_read_timeout) {
  Scraped s;
  std::vector<std::unique_ptr<RawHttp>> held;
  for (int i = 0; i < 64; ++i) {
    held.push_back(std::make_unique<RawHttp>(s.p.fw_ns));
    BOOST_TEST_REQUIRE(held.back()->connected);
  }
  held[0]->send_all("GET /metrics HTTP/1.1\r\nHost: t\r\n");  // incomplete
  {
    RawHttp over(s.p.fw_ns);  // the kernel accepts it; the agent closes it
    BOOST_TEST(over.closed_by_server());
    BOOST_TEST(over.raw.empty());
  }
  BOOST_TEST(s.fw.ask("version").find("xdpfw-host") == 0u);  // the control socket is not hit
  held.pop_back();  // a slot frees (once the agent has seen the close)
  HttpResponse r;
  BOOST_TEST(wait_until([&] { return (r = s.get()).status == 200; }));
  auto m = samples(r.body);
  BOOST_TEST(m["xdpfw_host_http_connections_refused_total"] >= 1);
  BOOST_TEST(m["xdpfw_host_http_connections"] == 64);
  // The read timeout: every idle connection goes, the incomplete one too,
  // none of them with a reply.
  for (auto& c : held) BOOST_TEST(c->closed_by_server(60));
  BOOST_TEST(held[0]->raw.empty());
  BOOST_TEST(held[1]->raw.empty());
  BOOST_TEST(wait_until([&] { return samples(s.get().body)["xdpfw_host_http_connections"] == 1; }));
}

// A reload moves the listener (also to an address that overlaps the
// running one on the same port), closes it, opens it again; an address
// that cannot be bound refuses the reload whole, nothing of it applied.
BOOST_AUTO_TEST_CASE(reload_moves_the_listener) {
  Scraped s;
  fs::path conf = s.fw.dir / "xdpfw.conf";
  std::string original = read_file(conf);
  auto with = [&](const std::string& host_lines) {
    std::string c = original;
    c.replace(c.find("metrics-listen"),
              c.find('\n', c.find("metrics-listen")) - c.find("metrics-listen"), host_lines);
    write_file(conf, c);
  };
  auto status = [&](const char* addr, uint16_t port) {
    int st = 0;
    HttpResponse r = curl(
        s.p.fw_ns, std::string("http://") + addr + ":" + std::to_string(port) + "/metrics", &st);
    return r.status;
  };
  with("metrics-listen = [::1]:9478");
  std::string out = s.fw.ask("reload");
  BOOST_TEST(out.find("metrics on http://[::1]:9478/metrics") != std::string::npos, out);
  BOOST_TEST(status("[::1]", 9478) == 200);
  BOOST_TEST(status("127.0.0.1", metrics_port) == 0);  // refused: nothing listens
  with("metrics-listen = 127.0.0.1:9478");
  BOOST_TEST(s.fw.ask("reload").find("reloaded") == 0u);
  BOOST_TEST(status("127.0.0.1", 9478) == 200);
  BOOST_TEST(status("[::1]", 9478) == 0);
  // 0.0.0.0:9478 collides with the running 127.0.0.1:9478: moved all the same.
  with("metrics-listen = 0.0.0.0:9478");
  out = s.fw.ask("reload");
  BOOST_TEST(out.find("metrics on http://0.0.0.0:9478/metrics") != std::string::npos, out);
  BOOST_TEST(status("198.18.0.1", 9478) == 200);
  // Another program holds 9479: refused whole; max-clients is not applied.
  int holder = s.p.fw_ns.socket_in(AF_INET, SOCK_STREAM);
  sockaddr_storage ss;
  socklen_t len = sockaddr_of(AF_INET, "127.0.0.1", 9479, ss);
  BOOST_TEST_REQUIRE(bind(holder, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  BOOST_TEST_REQUIRE(listen(holder, 1) == 0);
  with("max-clients = 1\nmetrics-listen = 127.0.0.1:9479");
  out = s.fw.ask("reload");
  BOOST_TEST(
      out.find("ERR: reload refused, the running config stays: " + conf.string() + ":") == 0u, out);
  BOOST_TEST(
      out.find(": metrics-listen: cannot listen on 127.0.0.1:9479: Address already in use") !=
          std::string::npos,
      out);
  BOOST_TEST(status("198.18.0.1", 9478) == 200);
  Session a(s.fw.sock), b(s.fw.sock);  // max-clients = 1 would refuse the second
  BOOST_TEST(a.command("version").find("xdpfw-host") == 0u);
  BOOST_TEST(b.command("version").find("xdpfw-host") == 0u);
  close(holder);
  // Off, and on again.
  with("metrics-listen = none");
  out = s.fw.ask("reload");
  BOOST_TEST(out.find("metrics listener closed") != std::string::npos, out);
  BOOST_TEST(status("198.18.0.1", 9478) == 0);
  with("metrics-listen = 127.0.0.1:9477");
  BOOST_TEST(s.fw.ask("reload").find("reloaded") == 0u);
  auto m = samples(curl(s.p.fw_ns, "http://127.0.0.1:9477/metrics").body);
  BOOST_TEST(m["xdpfw_host_reloads_total{outcome=\"applied\"}"] == 5);
  BOOST_TEST(m["xdpfw_host_reloads_total{outcome=\"refused\"}"] == 1);
}

// At start an address that cannot be bound is an error naming FILE:LINE.
BOOST_AUTO_TEST_CASE(unbindable_address_stops_the_start) {
  NetNs ns;
  FirewallAgent fw(ns, "", "", "metrics-listen = 198.18.0.77:9477\n");  // not an address of ns
  fw.start("", false);
  BOOST_TEST(fw.host->exit_code() == 1);
  std::string log = fw.host->log();
  BOOST_TEST(log.find((fw.dir / "xdpfw.conf").string() +
                      ":3: metrics-listen: cannot listen on 198.18.0.77:9477: Cannot assign "
                      "requested address") != std::string::npos,
             log);
}

// A real Prometheus server (Debian's), run by the test in the namespace,
// scrapes the agent every second; its query API then shows the rule
// counters 'rule list json' shows.
BOOST_AUTO_TEST_CASE(prometheus_scrapes_the_agent) {
  Scraped s;
  TempDir prom;
  write_file(prom / "prometheus.yml",
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
             "  - job_name: xdpfw\n    static_configs:\n      - targets: ['127.0.0.1:" +
                 std::to_string(metrics_port) + "']\n");
  const std::string api = "http://127.0.0.1:9090/api/v1/";
  Child server(s.p.fw_ns,
               {"prometheus", "--config.file=" + (prom / "prometheus.yml").string(),
                "--storage.tsdb.path=" + (prom / "data").string(),
                "--web.listen-address=127.0.0.1:9090", "--log.level=warn"},
               prom / "prometheus.log");
  json rules = s.rules();
  BOOST_TEST_REQUIRE(rules.size() == 2u);
  std::map<std::string, std::string> expected;  // id -> packets, as the API writes values
  for (const json& r : rules)
    expected[std::to_string(r["id"].get<uint64_t>())] =
        std::to_string(r["packets"].get<uint64_t>());
  json answer;
  std::map<std::string, std::string> seen;
  bool matched = wait_until(
      [&] {
        HttpResponse r = curl(s.p.fw_ns, "'" + api + "query?query=xdpfw_rule_packets_total'");
        if (r.status != 200) return false;
        answer = json::parse(r.body, nullptr, false);
        if (answer.is_discarded() || answer["status"] != "success") return false;
        seen.clear();
        for (const json& v : answer["data"]["result"])
          seen[v["metric"]["id"].get<std::string>()] = v["value"][1].get<std::string>();
        return seen == expected;
      },
      120);
  BOOST_TEST(matched, "expected " << json(expected).dump() << ", Prometheus answered "
                                  << answer.dump() << "\n"
                                  << read_file(server.log));
  BOOST_TEST_MESSAGE("Prometheus: " << answer.dump());
  for (const json& v : answer["data"]["result"]) {
    BOOST_TEST(v["metric"]["job"] == "xdpfw");
    BOOST_TEST(v["metric"]["instance"] == "127.0.0.1:" + std::to_string(metrics_port));
  }
  // The target is healthy: its last scrape had no error (promtool's format).
  HttpResponse t = curl(s.p.fw_ns, "'" + api + "targets'");
  json targets = json::parse(t.body, nullptr, false);
  BOOST_TEST_REQUIRE(!targets.is_discarded());
  BOOST_TEST(targets["data"]["activeTargets"][0]["health"] == "up", t.body);
  BOOST_TEST(targets["data"]["activeTargets"][0]["lastError"] == "", t.body);
  HttpResponse up = curl(s.p.fw_ns, "'" + api + "query?query=xdpfw_fragments_total'");
  BOOST_TEST(up.body.find("\"result\":[{") != std::string::npos, up.body);
}

BOOST_AUTO_TEST_SUITE_END()
