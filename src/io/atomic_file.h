// Crash-safe file output: a reader (or a resumed run) sees either the old file
// or the complete new one, never a torn write. Used by token shards, dataset
// manifests, tokenizer exports and the trainer's checkpoints.
//
// The recipe is the classic one: write a temporary file in the same directory,
// fsync it, rename() it over the final name (atomic within one filesystem), then
// fsync the directory so the rename itself survives a power cut.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "io/file_util.h"

namespace kiln {

class AtomicFile {
 public:
  // Creates "<dir>/.<name>.tmp-<pid>-<n>" next to `path`. The directory must exist.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes (buffered). Throws RuntimeError on a failed write (disk full).
  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Overwrites bytes already written at `offset` (e.g. a header whose counts
  // are known only at the end). offset + bytes must not exceed bytes_written().
  void write_at(uint64_t offset, const void* data, size_t bytes);

  // Flushes, fsyncs and closes the temporary file, renames it to path() and
  // fsyncs the directory. After this the destructor does nothing.
  // Returns the size and xxHash64 of the committed bytes.
  FileDigest commit();
  // Drops the temporary file now (the destructor does the same).
  void abort();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  void flush_buffer();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  std::string buffer_;
  uint64_t bytes_written_ = 0;
  bool done_ = false;
};

// Writes `contents` to `path` atomically (AtomicFile in one call).
FileDigest write_file_atomic(const std::string& path, std::string_view contents);


// A directory that becomes visible under its final name only when complete:
// files are written into path() (a hidden sibling of `final_path`); commit()
// fsyncs every regular file in it and the directory itself, renames it to
// `final_path` (replacing an existing directory of that name) and fsyncs the
// parent. Without commit() the destructor deletes the staging directory.
class StagingDirectory {
 public:
  explicit StagingDirectory(std::string final_path);
  ~StagingDirectory();
  StagingDirectory(const StagingDirectory&) = delete;
  StagingDirectory& operator=(const StagingDirectory&) = delete;

  const std::string& path() const { return staging_path_; }
  const std::string& final_path() const { return final_path_; }
  void commit();

 private:
  std::string final_path_;
  std::string staging_path_;
  bool done_ = false;
};

// "<dir>/.<name>.tmp-<pid>-<n>": a unique hidden sibling name for `path`.
std::string temporary_sibling(const std::string& path);

}  // namespace kiln
