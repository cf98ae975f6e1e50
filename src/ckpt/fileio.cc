#include "ckpt/fileio.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace smp::ckpt::io {
namespace {

[[noreturn]] void io_fail(const std::string &op, const std::string &path, int err) {
  throw Error(Status::IO, op + " " + path + ": " + std::strerror(err));
}

}  // namespace

int open_read(const std::string &path) {
  // O_NONBLOCK: opening a FIFO put where a file belongs must not wait for
  // a writer that never comes; it is refused below, like any non-regular
  // file. Reads of regular files ignore the flag, but it is cleared anyway.
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) io_fail("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    io_fail("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(Status::Corrupt, path + ": not a regular file (a directory, FIFO, socket or device); refused");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(fd);
    io_fail("cannot set flags of", path, err);
  }
  return fd;
}

uint64_t regular_file_size(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) io_fail("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode))
    throw Error(Status::Corrupt, path + ": not a regular file (a directory, FIFO, socket or device); refused");
  return static_cast<uint64_t>(st.st_size);
}

int create_write(const std::string &path) {
  int fd;
  do fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) io_fail("cannot create", path, errno);
  return fd;
}

void close_fd(int fd, const std::string &path) {
  if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) io_fail("cannot close", path, errno);
}

uint64_t file_size(int fd, const std::string &path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) io_fail("cannot stat", path, errno);
  return static_cast<uint64_t>(st.st_size);
}

void write_all(int fd, const void *data, size_t n, const std::string &path) {
  const char *p = static_cast<const char *>(data);
  while (n > 0) {
    // Linux transfers at most ~2 GiB per call; ask for less.
    const size_t want = n < (size_t{1} << 30) ? n : (size_t{1} << 30);
    const ssize_t w = ::write(fd, p, want);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_fail("cannot write", path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void pread_all(int fd, void *dst, size_t n, uint64_t offset, const std::string &path) {
  char *p = static_cast<char *>(dst);
  while (n > 0) {
    const size_t want = n < (size_t{1} << 30) ? n : (size_t{1} << 30);
    const ssize_t r = ::pread(fd, p, want, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      io_fail("cannot read", path, errno);
    }
    if (r == 0) throw Error(Status::Corrupt, path + ": file ends early (truncated while open?)");
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

void fsync_fd(int fd, const std::string &path) {
  if (::fsync(fd) != 0) io_fail("cannot fsync", path, errno);
}

void fsync_dir(const std::string &dir) {
  int fd;
  do fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) io_fail("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) io_fail("cannot fsync directory", dir, err);
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_dir(const std::string &path) {
  if (::mkdir(path.c_str(), 0755) == 0) return;
  if (errno == EEXIST && is_dir(path)) return;
  io_fail("cannot create directory", path, errno);
}

void make_dirs(const std::string &path) {
  for (size_t pos = 1; pos <= path.size(); ++pos)
    if (pos == path.size() || path[pos] == '/') {
      const std::string prefix = path.substr(0, pos);
      if (!prefix.empty() && !is_dir(prefix)) make_dir(prefix);
    }
}

std::vector<std::string> list_dir(const std::string &dir) {
  DIR *d = ::opendir(dir.c_str());
  if (!d) io_fail("cannot list", dir, errno);
  std::vector<std::string> out;
  while (const dirent *e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

void rename_path(const std::string &from, const std::string &to) {
  if (::rename(from.c_str(), to.c_str()) != 0) io_fail("cannot rename " + from + " to", to, errno);
}

void remove_tree(const std::string &path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    io_fail("cannot stat", path, errno);
  }
  if (S_ISDIR(st.st_mode))
    for (const auto &n : list_dir(path)) remove_tree(join(path, n));
  if (::remove(path.c_str()) != 0 && errno != ENOENT) io_fail("cannot remove", path, errno);
}

std::string read_small_file(const std::string &path, uint64_t max_bytes) {
  const int fd = open_read(path);
  std::string data;
  try {
    const uint64_t n = file_size(fd, path);
    if (n > max_bytes)
      throw Error(Status::Corrupt, path + ": " + std::to_string(n) + " bytes, more than the " +
                                       std::to_string(max_bytes) + " such a file may have");
    data.resize(static_cast<size_t>(n));
    pread_all(fd, data.data(), data.size(), 0, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  close_fd(fd, path);
  return data;
}

void write_file_atomic(const std::string &path, const std::string &data) {
  const std::string tmp = path + ".tmp";
  const int fd = create_write(tmp);
  try {
    write_all(fd, data.data(), data.size(), tmp);
    fsync_fd(fd, tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());  // a half-written temporary holds disk for nothing
    throw;
  }
  close_fd(fd, tmp);
  try {
    rename_path(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_dir(dir_name(path));
}

std::string join(const std::string &a, const std::string &b) {
  if (a.empty()) return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string dir_name(const std::string &path) {
  const size_t p = path.find_last_of('/');
  if (p == std::string::npos) return ".";
  if (p == 0) return "/";
  return path.substr(0, p);
}

}  // namespace smp::ckpt::io
