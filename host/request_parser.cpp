// request_parser.cpp: see request_parser.hpp.
#include "request_parser.hpp"

#include <algorithm>
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
    // A NUL byte ends a string in C and in many a client's mind: a line
    // holding one is refused, never cut there ("... action drop\0 prio 1").
    bool nul = line.find('\0') != std::string_view::npos;
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
        if (nul && !pending_.error)
          pending_.error =
              pending_.line + ": payload line " +
              std::to_string(std::count(pending_.payload->begin(), pending_.payload->end(), '\n') +
                             1) +
              " holds a NUL byte: refused, nothing was applied";
        pending_.payload->append(line).push_back('\n');
      }
    } else {
      std::string_view cmd = trim(line);
      if (nul) {
        std::string shown(cmd.substr(0, cmd.find('\0')));
        // The line as far as the NUL: within max-line, as every line is.
        out.push_back(Request{
            shown, std::nullopt,
            "the request line holds a NUL byte (after '" + shown + "'): refused, nothing was run"});
        buf_.clear();
        continue;
      }
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
    // Cut short, whatever its form: a truncated payload never applies.
    pending_.error = pending_.line + ": the payload ended before its end " +
                     (tag_.empty() ? std::string("(an empty line)") : "line '" + tag_ + "'") +
                     ": nothing was applied";
    out.push_back(std::move(pending_));
    pending_ = Request{};
  }
  if (out.empty()) return std::nullopt;
  return std::move(out.back());
}

}  // namespace xdpfw::host
