// control_fuzz: what a client's bytes go through before any handler runs:
// the framing (lines, "<<" payloads, limits; the input cut into chunks at
// the points the first bytes choose, as a socket would), then the command
// registry with the host's and the firewall's command names, then the
// argument parsers of the rule commands. A limit broken must close the
// session; nothing may crash or hang.
#include <cstdint>
#include <string>
#include <vector>

#include "command_registry.hpp"
#include "request_parser.hpp"
#include "rule.hpp"
#include "rules_file.hpp"

using namespace xdpfw::host;

namespace {

const char* const names[] = {
    "help",       "version",     "quit",         "show plugins", "show interfaces",
    "show stats", "show config", "show metrics", "show events",  "rule list",
    "rule add",   "rule del",    "rule flush",   "rule replace", "save",
    "attach",     "detach",      "auto",         "log reopen"};

CommandRegistry& registry() {
  static CommandRegistry reg = [] {
    CommandRegistry r;
    for (const char* n : names) {
      std::string name = n;
      r.add(0, name, name, false, [name](std::string_view args, const std::string* payload) {
        CommandResult res;
        try {
          if (name == "rule add") xdpfw::parse_rule(args);
          if (name == "rule replace" && payload) xdpfw::parse_rules_text("payload", *payload);
          (void)split_words(args);
        } catch (const std::runtime_error& e) {
          res.ok = false;
          res.text = e.what();
        }
        return res;
      });
    }
    return r;
  }();
  return reg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t chunk = 1 + data[0] % 64;  // the reads a socket would deliver
  size_t max_line = 16 + data[1] * 4u;
  data += 2;
  size -= 2;
  RequestParser parser(max_line, 4 * max_line);
  std::vector<Request> reqs;
  bool closed = false;
  for (size_t off = 0; off < size && !closed; off += chunk) {
    std::string_view piece(reinterpret_cast<const char*>(data) + off, std::min(chunk, size - off));
    if (parser.feed(piece, reqs)) closed = true;
  }
  if (!closed)
    if (auto last = parser.finish()) reqs.push_back(*last);
  for (const Request& r : reqs) {
    if (r.line.size() > max_line) __builtin_trap();  // the limit was not enforced
    if (auto hit = registry().find(r.line)) {
      const std::string* payload = r.payload ? &*r.payload : nullptr;
      hit->first->fn(hit->second, payload);
    }
  }
  return 0;
}
