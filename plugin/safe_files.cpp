// safe_files.cpp: see safe_files.hpp.
#include "safe_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace xdpfw {

void write_file_atomic(const std::string& path, const std::string& body, bool durable, bool backup,
                       mode_t new_mode, const std::string& what) {
  struct stat old {};
  bool exists = ::lstat(path.c_str(), &old) == 0;
  if (!exists && errno != ENOENT) throw FileError(what + ": " + path + ": " + std::strerror(errno));
  if (exists && S_ISLNK(old.st_mode))
    throw FileError(what + ": " + path + " is a symbolic link: refused");
  if (exists && !S_ISREG(old.st_mode))
    throw FileError(what + ": " + path + " is not a regular file: refused");
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string tmp = dir + ".xdpfw-save-XXXXXX";  // created O_EXCL, unpredictable
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0)
    throw FileError(what + ": cannot create a file in " + dir + ": " + std::strerror(errno));
  auto fail = [&](const std::string& step) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw FileError(what + ": " + step + ": " + std::strerror(e));
  };
  if (::fchmod(fd, exists ? (old.st_mode & 07777) : new_mode) != 0) fail("chmod " + tmp);
  if (exists && ::fchown(fd, old.st_uid, old.st_gid) != 0) fail("chown " + tmp);
  size_t off = 0;
  while (off < body.size()) {
    ssize_t n = ::write(fd, body.data() + off, body.size() - off);
    if (n < 0) fail("writing " + path);
    off += static_cast<size_t>(n);
  }
  if (durable && ::fsync(fd) != 0) fail("fsync " + path);
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw FileError(what + ": closing " + path + ": " + std::strerror(e));
  }
  // The replaced file stays as PATH.bak (same inode: same mode and owner).
  if (exists && backup) {
    std::string bak = path + ".bak", bak_tmp = tmp + ".bak";
    if (::link(path.c_str(), bak_tmp.c_str()) != 0 || ::rename(bak_tmp.c_str(), bak.c_str()) != 0) {
      int e = errno;
      ::unlink(bak_tmp.c_str());
      ::unlink(tmp.c_str());
      throw FileError(what + ": keeping " + bak + ": " + std::strerror(e));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw FileError(what + ": " + path + ": " + std::strerror(e));
  }
}

std::string read_file_nofollow(const std::string& path, bool own) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw FileError(
        path + ": " +
        (errno == ELOOP ? std::string("a symbolic link: refused") : std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FileError(path + ": not a regular file: refused");
  }
  if (own && st.st_uid != ::geteuid()) {
    ::close(fd);
    throw FileError(path + ": owned by uid " + std::to_string(st.st_uid) +
                    ", not by the agent's user (uid " + std::to_string(::geteuid()) +
                    "): refused; the agent reads only the state it wrote (remove the file)");
  }
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int e = errno;
  ::close(fd);
  if (n < 0) throw FileError(path + ": " + std::strerror(e));
  return out;
}

namespace {
bool on_read_only_mount(const std::string& path) {
  struct statvfs v {};
  return ::statvfs(path.c_str(), &v) == 0 && (v.f_flag & ST_RDONLY);
}
}  // namespace

std::string trust_problem(const std::string& path, const std::string& what, bool read_only_ok) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::canonical(path, ec);
  if (ec) return what + " " + path + ": " + ec.message();
  std::string given = fs::absolute(path, ec).lexically_normal().string();
  while (given.size() > 1 && given.back() == '/') given.pop_back();
  std::string name =
      what + " " + path + (given != p.string() ? " (a link to " + p.string() + ")" : "");
  bool first = true;
  for (fs::path at = p;; at = at.parent_path()) {
    struct stat st {};
    if (::stat(at.c_str(), &st) != 0)
      return name + ": " + at.string() + ": " + std::strerror(errno);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    std::string where = first ? name : name + ": the folder above it " + at.string();
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
      return where + " is owned by uid " + std::to_string(st.st_uid) +
             ", neither root nor the agent's user: refused (chown root " + at.string() + ")";
    bool group_can = (st.st_mode & S_IWGRP) && st.st_gid != 0 && st.st_gid != ::getegid();
    bool others_can = st.st_mode & S_IWOTH;
    if ((group_can || others_can) && (first || !(st.st_mode & S_ISVTX)) &&
        !(read_only_ok && on_read_only_mount(at.string())))
      return where + " can be written by " + (others_can ? "every user" : "its group") + " (mode " +
             mode + "): refused (chmod go-w " + at.string() + ")";
    first = false;
    if (at == at.root_path()) break;
  }
  return "";
}

std::string private_dir_problem(const std::string& dir, const std::string& what) {
  return trust_problem(dir, what, false);
}

void make_private_dir(const std::string& dir, mode_t mode, const std::string& what) {
  namespace fs = std::filesystem;
  // Each missing folder is made with mode (no window where it is open).
  fs::path p = fs::path(dir).lexically_normal(), built;
  for (const fs::path& part : p) {
    built /= part;
    if (::mkdir(built.c_str(), mode) != 0 && errno != EEXIST)
      throw FileError(what + " " + dir + ": cannot create " + built.string() + ": " +
                      std::strerror(errno));
  }
  std::string problem = private_dir_problem(dir, what);
  if (!problem.empty()) throw FileError(problem);
}

}  // namespace xdpfw
