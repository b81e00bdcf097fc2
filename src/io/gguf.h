// GGUF, the model file of llama.cpp / ggml: a reader and writer of the container
// (version 3; version 2 has the same layout and is read too).
//
// Layout, all little-endian (ggml's docs/gguf.md):
//   uint32 magic "GGUF" (bytes 47 47 55 46), uint32 version, uint64 tensor_count,
//   uint64 metadata_kv_count;
//   metadata_kv_count x { string key, uint32 value_type, value }, where
//     string = uint64 length + that many bytes (no NUL),
//     value  = the scalar, a string, or for ARRAY: uint32 element type,
//              uint64 count, the elements;
//   tensor_count x { string name, uint32 n_dims, uint64 dims[n_dims],
//                    uint32 ggml_type, uint64 offset };
//   padding to `alignment` (metadata general.alignment, uint32, default 32);
//   the data section: each tensor at data_start + offset, offset a multiple of
//   the alignment.
// dims are ggml's ne: dims[0] is the contiguous (fastest) one, so a row-major
// PyTorch matrix [rows, cols] is dims {cols, rows} with the same bytes.
//
// Tensor types read and written: F32, F16, BF16 and Q8_0 (blocks of 32
// elements along dims[0]: an fp16 scale d then 32 int8 q; value = d * q).
// Everything the reader gets is validated before it is trusted (magic, version,
// counts against the file size, string and array lengths, value type ids, bools,
// duplicate keys and names, the alignment, tensor types, dims against the type's
// block size, overflow-checked extents, offsets aligned, inside the file and not
// overlapping); each failure is an InputError naming the file and what is wrong.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/file_util.h"

namespace kiln {

enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);

// The ggml tensor types Kiln reads and writes (ids as in ggml.h).
enum class GgmlType : uint32_t { f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30 };
// "F32", "Q8_0", ...; also names the ggml types Kiln does not read ("Q4_K").
std::string ggml_type_name(uint32_t type);
inline std::string ggml_type_name(GgmlType type) { return ggml_type_name(uint32_t(type)); }
// Elements per block along dims[0], and bytes per block.
int64_t ggml_block_size(GgmlType type);
uint64_t ggml_block_bytes(GgmlType type);
constexpr int64_t kQ8_0Block = 32;

// One metadata value. Scalars: integers and bools in `integer` (a u64 above
// INT64_MAX keeps its bits), floats in `real`, strings in `text`; arrays: their
// elements in `integers`, `reals` or `texts` by `element`. Arrays of arrays are
// not supported (llama.cpp writes none).
struct GgufValue {
  GgufValueType type = GgufValueType::u32;
  GgufValueType element = GgufValueType::u32;  // when type == array
  int64_t integer = 0;
  double real = 0;
  std::string text;
  std::vector<int64_t> integers;
  std::vector<double> reals;
  std::vector<std::string> texts;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue f32_array(const std::vector<float>& v);
  static GgufValue i32_array(const std::vector<int32_t>& v);

  bool is_integer() const;  // u8 ... i64 (not bool)
  bool is_float() const { return type == GgufValueType::f32 || type == GgufValueType::f64; }
  size_t array_size() const;
  bool operator==(const GgufValue& o) const = default;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] contiguous
  GgmlType type = GgmlType::f32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t bytes = 0;   // numel / block * block bytes
  int64_t numel() const;
};

// "[cols, rows]" in GGUF's order; for messages.
std::string gguf_dims_string(const std::vector<int64_t>& dims);

class GgufReader {
 public:
  // Reads and validates the header, the metadata and the tensor infos (not the
  // tensor values, which read_f32 / read_raw fetch on demand).
  explicit GgufReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  // Typed access: InputError naming the key when it is missing or has the wrong
  // type (any integer type for get_uint, when non-negative; f32/f64 for get_float).
  uint64_t get_uint(const std::string& key) const;
  std::optional<uint64_t> find_uint(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  std::string get_string(const std::string& key) const;

  // Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor as fp32 (F16/BF16 widened exactly, Q8_0 dequantized), numel floats.
  void read_f32(const GgufTensorInfo& tensor, float* out) const;
  std::string read_raw(const GgufTensorInfo& tensor) const;

 private:
  void read_alignment();
  void place_data();
  InputFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

// A tensor to write: numel fp32 values (row-major, dims[0] contiguous), encoded
// into `type` as the file is written (F16 rounds to nearest even; a value outside
// F16's range is an InputError naming the tensor; Q8_0 as encode_q8_0).
struct GgufTensorToWrite {
  std::string name;
  std::vector<int64_t> dims;  // ggml order
  GgmlType type = GgmlType::f32;
  const float* data = nullptr;
};

class GgufWriter {
 public:
  // Keys and names must be unique (InputError otherwise); a tensor name is at
  // most 63 bytes (ggml's GGML_MAX_NAME with its NUL); Q8_0 needs dims[0] % 32 == 0.
  void add(const std::string& key, GgufValue value);
  void add_tensor(GgufTensorToWrite tensor);
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }

  // Version 3, alignment 32, tensors in the order added, each padded to the
  // alignment. Atomic: an error while encoding or writing leaves no file.
  FileDigest write(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorToWrite> tensors_;
};

// Q8_0 of n values (n % 32 == 0) into n / 32 blocks of 34 bytes. Per block:
// d = max|x| / 127 stored as fp16 (rounded to nearest even), q = round(x / d16)
// with the stored d16 (so |x - d16 * q| <= d16 / 2), all q 0 when d16 is 0.
// False when a scale does not fit fp16 (max|x| > 65504 * 127) or x is not finite.
bool encode_q8_0(const float* x, int64_t n, uint8_t* out);
void decode_q8_0(const uint8_t* in, int64_t n, float* out);

}  // namespace kiln
