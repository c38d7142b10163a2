// state_journal.cpp: see state_journal.hpp.
#include "state_journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "safe_files.hpp"

namespace xdpfw {

StateJournal::StateJournal(std::string dir, std::string name, Log log)
    : dir_(dir == "none" ? std::string() : std::move(dir)),
      name_(std::move(name)),
      log_(std::move(log)) {}

StateJournal::~StateJournal() {
  close_journal();
}

std::string StateJournal::state_path() const {
  return enabled() ? dir_ + "/" + name_ + ".state" : std::string();
}

std::string StateJournal::journal_path() const {
  return enabled() ? dir_ + "/" + name_ + ".journal" : std::string();
}

void StateJournal::close_journal() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

// A file the agent did not write (a symlink, not a regular file, another
// owner) is no state of its: logged, and read as absent.
std::optional<std::string> StateJournal::read_own(const std::string& path) const {
  if (!enabled() || !std::filesystem::exists(std::filesystem::symlink_status(path)))
    return std::nullopt;
  try {
    return read_file_nofollow(path, true);
  } catch (const FileError& e) {
    log_(0, std::string("state-dir: ") + e.what() + " (read as if absent)");
    return std::nullopt;
  }
}

std::optional<std::string> StateJournal::read_state() const {
  return read_own(state_path());
}

std::vector<std::string> StateJournal::read_journal() {
  std::vector<std::string> out;
  lines_ = 0;
  std::string text = read_own(journal_path()).value_or("");
  size_t pos = 0, nl;
  while ((nl = text.find('\n', pos)) != std::string::npos) {
    out.emplace_back(text, pos, nl - pos);
    pos = nl + 1;
  }
  lines_ = out.size();
  return out;
}

bool StateJournal::append(const std::string& line, size_t fold_after) {
  if (!enabled()) return true;
  if (lines_ >= fold_after) return false;
  if (fd_ < 0) {
    fd_ = ::open(journal_path().c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                 0600);
    if (fd_ < 0) {
      log_(1, "state-dir: opening " + journal_path() + ": " + std::strerror(errno) +
                  " (the whole state is written instead)");
      return false;
    }
  }
  std::string text = line + "\n";
  if (::write(fd_, text.data(), text.size()) != ssize_t(text.size())) {
    log_(1, "state-dir: appending to " + journal_path() + ": " + std::strerror(errno) +
                " (the whole state is written instead)");
    close_journal();
    return false;
  }
  ++lines_;
  return true;
}

void StateJournal::fold(const std::string& snapshot, const std::string& header) {
  if (!enabled()) return;
  write_file_atomic(state_path(), header + snapshot, false, false, 0600, "state-dir");
  close_journal();
  if (::unlink(journal_path().c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("cannot empty " + journal_path() + ": " + std::strerror(errno));
  lines_ = 0;
}

}  // namespace xdpfw
