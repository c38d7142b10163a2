// state_journal.hpp: what the agent keeps across a restart, one way for
// every kind of state: a snapshot file (NAME.state, written whole and
// atomically) and a journal beside it (NAME.journal, one line per change,
// appended). A restart reads the snapshot, then the journal's lines in
// order; once the journal holds more lines than the caller's threshold,
// the caller writes a new snapshot (fold) and the journal starts empty.
//
// Durability: neither file is fsynced on the request path (a few ms each
// on this kind of disk, and changes come by the ten thousand a second).
// Both survive the agent's crash, kill -9 included; after a power loss
// the pinned maps are gone as well, and ext4 gives the old or the new
// snapshot. A line cut by a crash (no newline) is left out on reading.
// The journal's lines are idempotent by the callers' grammars, so that a
// journal already folded into the snapshot (a crash between the two
// writes) changes nothing when it is read again.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace xdpfw {

class StateJournal {
 public:
  using Log = std::function<void(int level, const std::string&)>;
  // dir "none" or "": nothing is kept (every call is a no-op, reads give
  // nothing).
  StateJournal(std::string dir, std::string name, Log log);
  ~StateJournal();
  StateJournal(const StateJournal&) = delete;
  StateJournal& operator=(const StateJournal&) = delete;

  bool enabled() const { return !dir_.empty(); }
  std::string state_path() const;
  std::string journal_path() const;

  // The snapshot's text; nullopt when there is none, or when it is not a
  // regular file owned by the agent's user (logged as an error).
  std::optional<std::string> read_state() const;
  // A file of the state folder: its text; nullopt when absent, or when it
  // is not a regular file owned by the agent's user (logged as an error).
  std::optional<std::string> read_own(const std::string& path) const;
  // The journal's whole lines in order (a last line without its newline,
  // cut by a crash, is left out); counts them as the journal's length.
  std::vector<std::string> read_journal();

  // Appends one line (no newline in it). False: the caller folds instead,
  // because the journal holds fold_after lines already or the write
  // failed (logged with the reason).
  bool append(const std::string& line, size_t fold_after);
  // Writes the snapshot atomically, then empties the journal (removed, not
  // truncated: truncation would follow a planted symbolic link). Throws
  // with the reason.
  void fold(const std::string& snapshot, const std::string& header = "");
  size_t lines() const { return lines_; }

 private:
  void close_journal();

  std::string dir_, name_;
  Log log_;
  int fd_ = -1;  // the journal, kept open between appends
  size_t lines_ = 0;
};

}  // namespace xdpfw
