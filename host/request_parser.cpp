// request_parser.cpp: see request_parser.hpp.
#include "request_parser.hpp"

#include "text.hpp"

namespace xdpfw::host {
std::optional<std::string> RequestParser::feed(std::string_view data, std::vector<Request>& out) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    size_t take = nl == std::string_view::npos ? data.size() : nl;
    if (buf_.size() + take > max_line_)
      return "line longer than " + std::to_string(max_line_) + " bytes";
    buf_.append(data.substr(0, take));
    if (nl == std::string_view::npos) break;
    data.remove_prefix(nl + 1);

    std::string_view line = buf_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (in_payload_) {
      if (trim(line).empty()) {
        out.push_back(std::move(pending_));
        pending_ = Request{};
        in_payload_ = false;
      } else {
        if (pending_.payload->size() + line.size() + 1 > max_payload_)
          return "payload larger than " + std::to_string(max_payload_) + " bytes";
        pending_.payload->append(line).push_back('\n');
      }
    } else {
      std::string_view cmd = trim(line);
      if (cmd.size() >= 2 && cmd.substr(cmd.size() - 2) == "<<") {
        pending_.line = std::string(trim(cmd.substr(0, cmd.size() - 2)));
        pending_.payload = std::string();
        in_payload_ = true;
      } else if (!cmd.empty()) {
        out.push_back(Request{std::string(cmd), std::nullopt});
      }
    }
    buf_.clear();
  }
  return std::nullopt;
}

std::optional<Request> RequestParser::finish() {
  std::vector<Request> out;
  if (!buf_.empty()) feed("\n", out);
  if (in_payload_) {
    in_payload_ = false;
    out.push_back(std::move(pending_));
    pending_ = Request{};
  }
  if (out.empty()) return std::nullopt;
  return std::move(out.back());
}

}  // namespace xdpfw::host
