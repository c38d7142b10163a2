// request_parser.hpp: framing of the control protocol. A request is one
// line; a line ending in "<<" carries a payload: the lines after it, up to an
// empty line (HAProxy's runtime API convention); a line ending in "<<TAG"
// (TAG: letters, digits, _.-) carries the lines up to one that is TAG alone,
// empty lines included (a shell here-document: files go through whole).
// Pure, so it is unit-tested.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xdpfw::host {

struct Request {
  std::string line;                    // without "<<", trimmed
  std::optional<std::string> payload;  // lines joined with '\n', each ending in '\n'
  // Set when the request cannot run: a "<<TAG" payload cut off by the end
  // of input (a truncated file must not replace anything).
  std::optional<std::string> error;
};

class RequestParser {
 public:
  RequestParser(size_t max_line, size_t max_payload)
      : max_line_(max_line), max_payload_(max_payload) {}

  // Appends the requests completed by data to out. Returns a message when a
  // limit is broken; the connection must then be closed.
  std::optional<std::string> feed(std::string_view data, std::vector<Request>& out);
  // At end of input: a last line without its newline, or an open payload,
  // completed as if the input had ended properly.
  std::optional<Request> finish();
  // True while a payload is open or a line is incomplete.
  bool partial() const { return !buf_.empty() || in_payload_; }
  // Bytes held for requests not yet complete.
  size_t buffered() const {
    return buf_.size() + (pending_.payload ? pending_.payload->size() : 0);
  }
  // Limits for the client once it is known (read-only clients get less).
  void set_limits(size_t max_line, size_t max_payload) {
    max_line_ = max_line;
    max_payload_ = max_payload;
  }

 private:
  static bool is_tag(std::string_view t);

  size_t max_line_, max_payload_;
  std::string buf_;
  std::string tag_;  // of the open payload; "" = up to an empty line
  bool in_payload_ = false;
  Request pending_;
};

}  // namespace xdpfw::host
