// client.hpp: xdpfw-ctl's side of the control socket: connect (with a
// message that says why not), send requests and report the replies, stream
// the events, or ask one quiet question for the completion.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace xdpfw::ctl {

// Bad usage: exit 2 with the message and the usage text.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sends the requests (each one line, or a line with its payload), reads
// until the agent closes, and reports each reply: errors on stderr, the
// rest on stdout. Returns the exit status (0, 1 an error reply, 3 gone).
// quiet: the last quiet replies are not printed but kept, for the caller.
int request(const std::string& sock, const std::vector<std::string>& requests, size_t quiet = 0,
            std::vector<std::string>* kept = nullptr);

// The live event stream, to stdout or appended to a file, until Ctrl-C.
int monitor(const std::string& sock, const std::string& append);

// One request's reply, or nothing when the agent cannot be reached, answers
// an error or takes longer than a second: for the completion, which must
// never print or wait.
std::optional<std::string> ask(const std::string& sock, const std::string& line);

// "COMMAND <<TAG", FILE's lines, "TAG": a tag that is no line of the file,
// so blank lines and comments go through whole.
std::string with_file(const std::string& command, const std::string& file);

}  // namespace xdpfw::ctl
