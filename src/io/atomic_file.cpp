#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace kiln {
namespace fs = std::filesystem;

namespace {

constexpr size_t kBufferBytes = size_t{1} << 20;

std::string errno_text() { return std::strerror(errno); }

std::string parent_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

std::string temporary_sibling(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  fs::path p(path);
  std::string name(".");
  name.append(p.filename().string())
      .append(".tmp-")
      .append(std::to_string(::getpid()))
      .append("-")
      .append(std::to_string(counter.fetch_add(1)));
  return (p.parent_path() / name).string();
}


AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::string dir = parent_of(path_);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_input(path_, "output directory does not exist", "", dir);
  temp_path_ = temporary_sibling(path_);
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_input(path_, "cannot create output file: " + errno_text());
  buffer_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (!done_) abort();
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (done_) fail_runtime(path_, "write after commit");
  const char* p = static_cast<const char*>(data);
  if (buffer_.size() + bytes > kBufferBytes) flush_buffer();
  if (bytes >= kBufferBytes) {
    // Large writes bypass the buffer.
    size_t left = bytes;
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_runtime(path_, "write failed: " + errno_text());
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  } else {
    buffer_.append(p, bytes);
  }
  bytes_written_ += bytes;
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t bytes) {
  if (done_) fail_runtime(path_, "write after commit");
  if (offset + bytes > bytes_written_) fail_runtime(path_, "write_at past the end of the file");
  flush_buffer();
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::pwrite(fd_, p, bytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_runtime(path_, "write failed: " + errno_text());
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::flush_buffer() {
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_runtime(path_, "write failed: " + errno_text());
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  buffer_.clear();
}

FileDigest AtomicFile::commit() {
  if (done_) fail_runtime(path_, "commit called twice");
  flush_buffer();
  if (::fsync(fd_) != 0) fail_runtime(path_, "fsync failed: " + errno_text());
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail_runtime(path_, "close failed: " + errno_text());
  }
  fd_ = -1;
  // The digest is read back from the synced bytes (write_at may have patched them).
  const FileDigest digest = digest_file(temp_path_);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    fail_runtime(path_, "rename of " + temp_path_ + " failed: " + errno_text());
  done_ = true;
  fsync_dir(parent_of(path_));
  return digest;
}

void AtomicFile::abort() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!done_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  done_ = true;
}

FileDigest write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  return file.commit();
}

// --- StagingDirectory ----------------------------------------------------------

StagingDirectory::StagingDirectory(std::string final_path) : final_path_(std::move(final_path)) {
  // Strip a trailing slash so the sibling name is computed from the directory's own name.
  while (final_path_.size() > 1 && final_path_.back() == '/') final_path_.pop_back();
  std::string parent = parent_of(final_path_);
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    fail_input(final_path_, "parent directory does not exist", "", parent);
  staging_path_ = temporary_sibling(final_path_);
  if (!fs::create_directory(staging_path_, ec) || ec)
    fail_input(final_path_,
               "cannot create staging directory " + staging_path_ + ": " + ec.message());
}

StagingDirectory::~StagingDirectory() {
  if (!done_) {
    std::error_code ec;
    fs::remove_all(staging_path_, ec);
  }
}

void StagingDirectory::commit() {
  if (done_) fail_runtime(final_path_, "commit called twice");
  for (const auto& entry : fs::directory_iterator(staging_path_)) {
    if (!entry.is_regular_file()) continue;
    int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_runtime(entry.path().string(), "cannot open to fsync: " + errno_text());
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) fail_runtime(entry.path().string(), "fsync failed: " + errno_text());
  }
  fsync_dir(staging_path_);
  // rename() cannot replace a non-empty directory, so an old one is first moved
  // aside; between the two renames the final name is briefly absent, never torn.
  std::error_code ec;
  std::string old_aside;
  if (fs::exists(final_path_, ec)) {
    old_aside = temporary_sibling(final_path_);
    if (::rename(final_path_.c_str(), old_aside.c_str()) != 0)
      fail_runtime(final_path_, "cannot move the old directory aside: " + errno_text());
  }
  if (::rename(staging_path_.c_str(), final_path_.c_str()) != 0)
    fail_runtime(final_path_, "rename of " + staging_path_ + " failed: " + errno_text());
  done_ = true;
  fsync_dir(parent_of(final_path_));
  if (!old_aside.empty()) fs::remove_all(old_aside, ec);
}

}  // namespace kiln
