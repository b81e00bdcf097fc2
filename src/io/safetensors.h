// safetensors: the self-describing tensor file Hugging Face uses, and the one
// Kiln writes model weights and optimizer state in.
//
// Layout (all integers little-endian):
//   [8 bytes]  N = header length, uint64
//   [N bytes]  JSON object: {"<name>": {"dtype": "F32", "shape": [r, c],
//                                       "data_offsets": [begin, end]}, ...,
//                            "__metadata__": {"<key>": "<string>", ...}}   (optional)
//   [rest]     the byte buffer; offsets are relative to its start.
// The reader trusts nothing: N against the file size (overflow-checked), the
// JSON, every dtype, shape product * element size == end - begin, offsets in
// bounds, and tensors contiguous, non-overlapping and covering the buffer
// exactly. Every failure is an InputError naming the file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/file_util.h"

namespace kiln {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as in the file: "F32", "BF16", "F16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data buffer
  int64_t numel() const;
};

// Bytes per element of a safetensors dtype name; 0 when Kiln does not know it.
size_t safetensors_dtype_size(const std::string& dtype);

// "[2, 3]"; used in error messages.
std::string shape_string(const std::vector<int64_t>& shape);

class SafetensorsReader {
 public:
  // Opens and validates the whole header (not the data values).
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  // Every tensor, ordered by its position in the buffer.
  const std::vector<SafetensorsEntry>& tensors() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Reads tensor `name` as fp32 into out[0, numel): F32 is copied, BF16 and F16
  // are widened exactly. InputError when the tensor is missing, has another
  // dtype, or numel != count.
  void read_f32(const std::string& name, float* out, int64_t count) const;
  std::vector<float> read_f32(const std::string& name) const;
  // The tensor's raw bytes (end - begin of them) into out.
  void read_raw(const SafetensorsEntry& entry, void* out) const;

 private:
  void parse_header(const std::string& header_json);
  InputFile file_;
  uint64_t data_start_ = 0;  // 8 + N
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write. `data` points at numel elements already in `dtype`
// (fp32 floats, or bf16 values), little-endian, row-major.
struct SafetensorsTensorRef {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes the tensors in the given order, contiguously, with the header padded
// by spaces so the buffer starts at a multiple of 8 bytes. Atomic (temp file,
// fsync, rename). Returns the size and xxHash64 of the written file.
FileDigest write_safetensors(const std::string& path,
                             const std::vector<SafetensorsTensorRef>& tensors,
                             const std::map<std::string, std::string>& metadata = {});

}  // namespace kiln
