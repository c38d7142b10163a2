// safe_files.hpp: the agent's own files, written and read as a root process
// must when folders may be shared: no symlink followed into someone else's
// file, no predictable temporary name, no folder another user can write.
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>

namespace xdpfw {

struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Replaces path with body: a new file created O_EXCL under an unpredictable
// name beside it (mkostemp), every write checked, fsync if durable, then
// rename. path must be a regular file or absent (a symlink, folder or device
// is refused). The new file keeps the old one's mode and owner (new_mode
// when there was none); backup keeps the old file as PATH.bak. Errors are
// "WHAT: ..." with what as given.
void write_file_atomic(const std::string& path, const std::string& body, bool durable, bool backup,
                       mode_t new_mode, const std::string& what);

// The whole file, opened with O_NOFOLLOW: a symlink is an error, as is
// anything but a regular file, or (own) a file the agent's user does not
// own: the agent's state is only what it wrote itself. Throws FileError
// naming path.
std::string read_file_nofollow(const std::string& path, bool own = false);

// Why path cannot be trusted as input of a root process, or "" when it can:
// path (its symbolic links followed) and every folder above its real path
// are owned by root or the agent's user; path is not writable by others
// nor by a group other than root's or the agent's; a folder above may be,
// with the sticky bit (as /tmp). read_only_ok: what sits on a read-only
// mount is exempt from the write test (kubelet mounts ConfigMaps read-only
// with mode 0777 folders). what names the setting in the message.
std::string trust_problem(const std::string& path, const std::string& what, bool read_only_ok);

// Why dir is not private to root and the agent's user, or "" when it is:
// dir and every folder above it must be owned by root or the agent's user;
// dir must not be writable by others (nor by a group other than root's or
// the agent's); a folder above may be, with the sticky bit (as /tmp and
// bpffs are). what names the setting in the message.
std::string private_dir_problem(const std::string& dir, const std::string& what);

// Creates dir (and the folders above it) as needed, new ones with mode,
// then checks it with private_dir_problem; throws FileError.
void make_private_dir(const std::string& dir, mode_t mode, const std::string& what);

}  // namespace xdpfw
