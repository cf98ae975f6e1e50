// POSIX file handling for checkpoints: whole reads and writes that retry
// short transfers and EINTR, fsync of files and directories, atomic
// renames. Failures throw smp::Error(Status::IO) naming the path and errno.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smp::ckpt::io {

// Regular files only: anything else (a FIFO that would block, a device
// that never ends) is Status::Corrupt, refused without reading.
int open_read(const std::string &path);
// stat's size of a regular file (following symlinks); Corrupt otherwise.
uint64_t regular_file_size(const std::string &path);
int create_write(const std::string &path);  // O_CREAT|O_TRUNC|O_WRONLY
void close_fd(int fd, const std::string &path);
uint64_t file_size(int fd, const std::string &path);
void write_all(int fd, const void *data, size_t n, const std::string &path);
void pread_all(int fd, void *dst, size_t n, uint64_t offset, const std::string &path);
void fsync_fd(int fd, const std::string &path);
// Opens the directory and fsyncs it, making entries created, renamed or
// removed in it durable.
void fsync_dir(const std::string &dir);

bool exists(const std::string &path);
bool is_dir(const std::string &path);
void make_dir(const std::string &path);   // ok if it exists as a directory
void make_dirs(const std::string &path);  // mkdir -p
std::vector<std::string> list_dir(const std::string &dir);  // names, no . / ..
void rename_path(const std::string &from, const std::string &to);
void remove_tree(const std::string &path);  // rm -rf; missing is fine

std::string read_small_file(const std::string &path, uint64_t max_bytes);
// Writes data to path via path.tmp + fsync + rename + fsync of the
// directory: readers see the old content or the new, never a mix.
void write_file_atomic(const std::string &path, const std::string &data);

std::string join(const std::string &a, const std::string &b);
std::string dir_name(const std::string &path);

}  // namespace smp::ckpt::io
