// request_parser.cpp: see request_parser.hpp.
#include "request_parser.hpp"

#include <cctype>

#include "text.hpp"

namespace xdpfw::host {

// "" (a payload up to an empty line) or a word of letters, digits and _.-
bool RequestParser::is_tag(std::string_view t) {
  for (char c : t)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  return t.size() <= 64;
}

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
      bool end = tag_.empty() ? trim(line).empty() : trim(line) == tag_;
      if (end) {
        out.push_back(std::move(pending_));
        pending_ = Request{};
        in_payload_ = false;
        tag_.clear();
      } else {
        if (pending_.payload->size() + line.size() + 1 > max_payload_)
          return "payload larger than " + std::to_string(max_payload_) + " bytes";
        pending_.payload->append(line).push_back('\n');
      }
    } else {
      std::string_view cmd = trim(line);
      size_t at = cmd.rfind("<<");
      std::string_view tag = at == std::string_view::npos ? "" : cmd.substr(at + 2);
      if (at != std::string_view::npos && is_tag(tag)) {
        pending_.line = std::string(trim(cmd.substr(0, at)));
        pending_.payload = std::string();
        tag_ = std::string(tag);
        in_payload_ = true;
      } else if (!cmd.empty()) {
        out.push_back(Request{std::string(cmd), std::nullopt, std::nullopt});
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
    if (!tag_.empty())
      pending_.error = pending_.line + ": the payload ended before its end line '" + tag_ +
                       "': nothing was applied";
    out.push_back(std::move(pending_));
    pending_ = Request{};
  }
  if (out.empty()) return std::nullopt;
  return std::move(out.back());
}

}  // namespace xdpfw::host
