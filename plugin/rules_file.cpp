// rules_file.cpp: see rules_file.hpp.
#include "rules_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace xdpfw {

namespace {

std::string read_whole(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RuleError(path + ": cannot read the rules file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw RuleError(path + ": cannot read the rules file");
  return ss.str();
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

RulesText read_rules_source(const std::string& path) {
  namespace fs = std::filesystem;
  RulesText src;
  src.path = path;
  if (path.empty()) return src;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    src.directory = true;
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
      std::string text = read_whole(file);
      if (!text.empty() && text.back() != '\n') text += '\n';
      src.text += "# file " + name + "\n";
      unsigned first = count_lines(src.text) + 1;
      src.text += text;
      src.parts.push_back({file, first, count_lines(text)});
    }
    return src;
  }
  src.text = read_whole(path);
  src.parts.push_back({path, 1, count_lines(src.text)});
  return src;
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
      throw RuleError((source ? source->where(lineno) : name + ":" + std::to_string(lineno)) +
                      ": " + e.what());
    }
  }
  return rules;
}

}  // namespace xdpfw
