// File plumbing every Kiln format shares: exact reads that treat a short file
// as bad input, writes that never leave a half-written file behind
// (write to a temp name, fsync, rename, fsync the directory), xxHash64
// digests, and overflow-checked size arithmetic for headers we do not trust.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kiln {

// Size and xxHash64 (seed 0) of a file's bytes, as recorded in checkpoints.
struct FileDigest {
  uint64_t size = 0;
  uint64_t xxh64 = 0;
};

// 16 lowercase hex digits, zero padded.
std::string hex64(uint64_t value);

// Overflow-checked unsigned arithmetic for sizes read from untrusted headers.
// Return false (and leave *out unspecified) when the result does not fit.
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

// Accumulates a size from untrusted factors; `ok()` is false once anything overflowed.
class CheckedSize {
 public:
  CheckedSize() = default;
  explicit CheckedSize(uint64_t v) : value_(v) {}
  CheckedSize& add(uint64_t v) {
    ok_ = ok_ && checked_add(value_, v, &value_);
    return *this;
  }
  // Adds a * b * c * ... (each factor a uint64).
  template <typename... Factors>
  CheckedSize& add_product(uint64_t first, Factors... rest) {
    uint64_t p = first;
    for (uint64_t f : {uint64_t(rest)...}) ok_ = ok_ && checked_mul(p, f, &p);
    return add(p);
  }
  bool ok() const { return ok_; }
  uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
  bool ok_ = true;
};

bool path_exists(const std::string& path);

// Size of a regular file; InputError when it is missing or not a regular file.
uint64_t file_size(const std::string& path);

// The whole file as bytes. InputError when it is missing, not a regular file,
// or larger than max_size (`what` names the file's role in the message).
std::string read_file(const std::string& path, uint64_t max_size, const std::string& what = "file");

// Streams the file through xxHash64.
FileDigest digest_file(const std::string& path);

// Flushes a directory entry (after a rename/create inside it). RuntimeError on failure.
void fsync_dir(const std::string& dir);

// A read-only file with exact positional reads: a read past the end is an
// InputError ("file is truncated"), never a silent short read.
class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset into dst.
  void read_at(uint64_t offset, void* dst, size_t n) const;
  // Sequential reading from a cursor that starts at 0.
  void read(void* dst, size_t n);
  void seek(uint64_t offset) { cursor_ = offset; }
  uint64_t tell() const { return cursor_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t cursor_ = 0;
};

// Atomic writes (temp file, fsync, rename, fsync the directory): io/atomic_file.h.

}  // namespace kiln
