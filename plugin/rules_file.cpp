// rules_file.cpp: see rules_file.hpp.
#include "rules_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "safe_files.hpp"

namespace xdpfw {

namespace {

// At most max + 1 bytes of a regular file (a file may grow between a check
// and the read; a FIFO or a device is refused, not waited on).
std::string read_bounded(const std::string& path, uint64_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw RuleError(path + ": cannot read the rules file: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw RuleError(path + ": not a regular file: refused");
  }
  std::string out;
  char buf[65536];
  while (out.size() <= max) {
    ssize_t n = ::read(fd, buf, std::min<uint64_t>(sizeof buf, max + 1 - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw RuleError(path + ": cannot read the rules file: " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// A rules file or folder as root may trust it (safe_files.hpp): refused
// with its path otherwise.
void check_trusted(const std::string& path) {
  std::string problem = trust_problem(path, "rules", true);
  if (!problem.empty()) throw RuleError(problem);
}

// Whether every user may read the file: only then is its text quoted in
// errors, status and the log.
bool world_readable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH);
}

unsigned count_lines(const std::string& s) {
  unsigned n = static_cast<unsigned>(std::count(s.begin(), s.end(), '\n'));
  return n + (!s.empty() && s.back() != '\n');
}

}  // namespace

std::string RulesText::where(unsigned line) const {
  for (const Part& p : parts)
    if (line >= p.first_line && line < p.first_line + p.lines)
      return p.file + ":" + std::to_string(line - p.first_line + 1);
  return (path.empty() ? std::string("rules") : path) + ":" + std::to_string(line);
}

std::vector<std::string> RulesText::files() const {
  std::vector<std::string> out;
  for (const Part& p : parts) out.push_back(p.file);
  return out;
}

RulesText read_rules_source(const std::string& path, uint64_t max_bytes) {
  namespace fs = std::filesystem;
  RulesText src;
  src.path = path;
  if (path.empty()) return src;
  auto too_large = [&](const std::string& what) {
    return RuleError(what + " is larger than rules-max-size (" + std::to_string(max_bytes) +
                     " bytes): refused");
  };
  auto add = [&](const std::string& file, std::string text, bool header) {
    if (header) src.text += "# file " + fs::path(file).filename().string() + "\n";
    unsigned first = count_lines(src.text) + 1;
    src.text += text;
    src.parts.push_back({file, first, count_lines(text), world_readable(file)});
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    src.directory = true;
    check_trusted(path);
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.' || name.size() <= 6 ||
          name.compare(name.size() - 6, 6, ".rules") != 0)
        continue;
      struct stat fst {};
      if (::stat(it->path().c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) names.push_back(name);
    }
    if (ec) throw RuleError(path + ": cannot read the rules directory: " + ec.message());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string file = (fs::path(path) / name).string();
      check_trusted(file);
      // Each file read up to the limit + 1 bytes, and no further once the
      // files together pass it.
      std::string text = read_bounded(file, max_bytes);
      if (text.size() > max_bytes) throw too_large(file);
      if (src.text.size() + text.size() > max_bytes)
        throw too_large(path + " (its files together, up to " + name + ")");
      if (!text.empty() && text.back() != '\n') text += '\n';
      add(file, std::move(text), true);
    }
    return src;
  }
  if (::stat(path.c_str(), &st) != 0)
    throw RuleError(path + ": cannot read the rules file: " + std::strerror(errno));
  check_trusted(path);
  std::string text = read_bounded(path, max_bytes);
  if (text.size() > max_bytes) throw too_large(path);
  add(path, std::move(text), false);
  return src;
}

bool RulesText::quotable(unsigned line) const {
  for (const Part& p : parts)
    if (line >= p.first_line && line < p.first_line + p.lines) return p.world_readable;
  return true;  // text that came from no file: the request's own
}

std::vector<Rule> parse_rules_text(const std::string& name, const std::string& text,
                                   bool assign_ids, const RulesText* source,
                                   std::vector<unsigned>* lines) {
  std::vector<Rule> rules;
  std::set<uint32_t> ids;
  std::istringstream in(text);
  std::string line;
  unsigned lineno = 0;
  uint32_t next_id = 1;
  uint32_t last_prio = default_priority;
  while (std::getline(in, line)) {
    ++lineno;
    size_t bytes = line.size();
    auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      Rule r = parse_rule(line);
      if (!r.id && assign_ids) r.id = next_id;
      if (r.id && !ids.insert(r.id).second)
        throw RuleError("id: " + std::to_string(r.id) + " is used twice");
      next_id = std::max(next_id, r.id + 1);
      if (!r.priority) r.priority = last_prio;
      last_prio = std::max(last_prio, *r.priority);
      rules.push_back(r);
      if (lines) lines->push_back(lineno);
    } catch (const RuleError& e) {
      std::string where = source ? source->where(lineno) : name + ":" + std::to_string(lineno);
      if (source && !source->quotable(lineno))
        throw RuleError(where + ": not a rule (" + std::to_string(bytes) +
                        " bytes; the file is not readable by every user, so its text is not "
                        "shown)");
      throw RuleError(where + ": " + e.what());
    }
  }
  return rules;
}

}  // namespace xdpfw
