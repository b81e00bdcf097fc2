#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "core/dtype.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace kiln {

static_assert(std::endian::native == std::endian::little,
              "GGUF is little-endian and read with memcpy");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;           // GGML_MAX_DIMS
constexpr size_t kMaxNameBytes = 63;  // GGML_MAX_NAME (64) with its NUL
constexpr uint64_t kQ8_0BlockBytes = 2 + kQ8_0Block;

std::string s(uint64_t v) { return std::to_string(v); }

uint64_t align_up(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) / alignment * alignment;
}

// Bytes of a fixed-size scalar type; 0 for string and array.
uint64_t scalar_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    default: return 0;
  }
}

bool known_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::f64); }

bool is_integer_type(GgufValueType t) {
  return scalar_bytes(t) != 0 && t != GgufValueType::boolean && t != GgufValueType::f32 &&
         t != GgufValueType::f64;
}

// Sequential reads of untrusted bytes through a buffer; every length is checked
// against what is left of the file before anything is allocated for it.
class Cursor {
 public:
  explicit Cursor(const InputFile& file) : file_(file) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return file_.size() - pos_; }

  void need(uint64_t n, const std::string& what) {
    if (n > left())
      fail_input(file_.path(), "file is truncated in " + what,
                 s(n) + " more bytes at offset " + s(pos_), s(left()));
  }
  void read(void* dst, uint64_t n, const std::string& what) {
    need(n, what);
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      if (pos_ < buf_start_ || pos_ >= buf_start_ + buf_.size()) refill();
      const uint64_t at = pos_ - buf_start_;
      const uint64_t take = std::min<uint64_t>(n, buf_.size() - at);
      std::memcpy(out, buf_.data() + at, take);
      out += take;
      pos_ += take;
      n -= take;
    }
  }
  template <typename T>
  T scalar(const std::string& what) {
    T v;
    read(&v, sizeof(T), what);
    return v;
  }
  std::string string(const std::string& what) {
    const uint64_t n = scalar<uint64_t>(what + " (string length)");
    need(n, what + " (a string of " + s(n) + " bytes)");
    std::string out(n, '\0');
    read(out.data(), n, what);
    return out;
  }

 private:
  void refill() {
    buf_start_ = pos_;
    buf_.resize(std::min<uint64_t>(1 << 20, left()));
    file_.read_at(pos_, buf_.data(), buf_.size());
  }
  const InputFile& file_;
  uint64_t pos_ = 0;
  uint64_t buf_start_ = 0;
  std::string buf_;
};

// Reads one scalar of type t (not string/array) into the value's integer or real.
void read_scalar(Cursor& c, GgufValueType t, const std::string& what, const std::string& path,
                 int64_t* integer, double* real) {
  switch (t) {
    case GgufValueType::u8: *integer = c.scalar<uint8_t>(what); return;
    case GgufValueType::i8: *integer = c.scalar<int8_t>(what); return;
    case GgufValueType::u16: *integer = c.scalar<uint16_t>(what); return;
    case GgufValueType::i16: *integer = c.scalar<int16_t>(what); return;
    case GgufValueType::u32: *integer = c.scalar<uint32_t>(what); return;
    case GgufValueType::i32: *integer = c.scalar<int32_t>(what); return;
    case GgufValueType::u64: *integer = int64_t(c.scalar<uint64_t>(what)); return;
    case GgufValueType::i64: *integer = c.scalar<int64_t>(what); return;
    case GgufValueType::f32: *real = c.scalar<float>(what); return;
    case GgufValueType::f64: *real = c.scalar<double>(what); return;
    case GgufValueType::boolean: {
      const uint8_t b = c.scalar<uint8_t>(what);
      if (b > 1) fail_input(path, what + ": bool is not 0 or 1", "0 or 1", s(b));
      *integer = b;
      return;
    }
    default: break;
  }
  fail_input(path, what + ": not a scalar type", "a scalar", gguf_value_type_name(t));
}

GgufValue read_value(Cursor& c, const std::string& key, const std::string& path) {
  GgufValue v;
  const std::string what = "metadata \"" + key + "\"";
  const uint32_t type = c.scalar<uint32_t>(what + " (value type)");
  if (!known_value_type(type))
    fail_input(path, what + " has an unknown value type", "0..12", s(type));
  v.type = GgufValueType(type);
  if (v.type == GgufValueType::string) {
    v.text = c.string(what);
    return v;
  }
  if (v.type != GgufValueType::array) {
    read_scalar(c, v.type, what, path, &v.integer, &v.real);
    return v;
  }
  const uint32_t element = c.scalar<uint32_t>(what + " (array element type)");
  if (!known_value_type(element))
    fail_input(path, what + " is an array of an unknown value type", "0..12", s(element));
  v.element = GgufValueType(element);
  if (v.element == GgufValueType::array)
    fail_input(path, what + " is an array of arrays, which kiln does not read",
               "an array of scalars or strings", "an array of arrays");
  const uint64_t n = c.scalar<uint64_t>(what + " (array length)");
  // Each element takes at least its scalar size (a string at least its 8-byte length).
  const uint64_t min_bytes = v.element == GgufValueType::string ? 8 : scalar_bytes(v.element);
  if (n > c.left() / min_bytes)
    fail_input(path, what + ": array length exceeds the file",
               "at most " + s(c.left() / min_bytes) + " elements", s(n));
  if (v.element == GgufValueType::string) {
    v.texts.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.texts.push_back(c.string(what + "[" + s(i) + "]"));
  } else if (v.element == GgufValueType::f32 || v.element == GgufValueType::f64) {
    v.reals.resize(n);
    int64_t unused = 0;
    for (uint64_t i = 0; i < n; ++i) read_scalar(c, v.element, what, path, &unused, &v.reals[i]);
  } else {
    v.integers.resize(n);
    double unused = 0;
    for (uint64_t i = 0; i < n; ++i) read_scalar(c, v.element, what, path, &v.integers[i], &unused);
  }
  return v;
}

// The metadata: keys non-empty and unique, values as read_value checks them.
void read_metadata(Cursor& c, uint64_t count, const std::string& path,
                   std::vector<std::pair<std::string, GgufValue>>* out) {
  std::set<std::string> seen;
  for (uint64_t i = 0; i < count; ++i) {
    std::string key = c.string("metadata key " + s(i));
    if (key.empty()) fail_input(path, "metadata key " + s(i) + " is empty", "a key", "\"\"");
    if (!seen.insert(key).second)
      fail_input(path, "metadata key \"" + key + "\" appears twice", "unique keys", "a duplicate");
    GgufValue v = read_value(c, key, path);
    out->emplace_back(std::move(key), std::move(v));
  }
}

// The tensor infos: names unique, dims against the type's block, sizes
// overflow-checked, offsets aligned (extents are checked by place_data).
void read_tensor_infos(Cursor& c, uint64_t count, const std::string& path, uint64_t alignment,
                       std::vector<GgufTensorInfo>* out) {
  std::set<std::string> seen;
  for (uint64_t i = 0; i < count; ++i) {
    GgufTensorInfo t;
    t.name = c.string("tensor info " + s(i) + " (name)");
    const std::string what = "tensor \"" + t.name + "\"";
    if (t.name.empty() || t.name.size() > kMaxNameBytes)
      fail_input(path, "tensor info " + s(i) + ": name length out of range",
                 "1 to " + s(kMaxNameBytes) + " bytes", s(t.name.size()));
    if (!seen.insert(t.name).second)
      fail_input(path, what + " appears twice", "unique tensor names", "a duplicate");
    const uint32_t n_dims = c.scalar<uint32_t>(what + " (n_dims)");
    if (n_dims < 1 || n_dims > uint32_t(kMaxDims))
      fail_input(path, what + ": number of dimensions out of range", "1 to 4", s(n_dims));
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.scalar<uint64_t>(what + " (dims)");
      if (dim == 0 || dim > uint64_t(std::numeric_limits<int64_t>::max()))
        fail_input(path, what + ": dimension " + s(d) + " out of range", "a positive size",
                   s(dim));
      t.dims.push_back(int64_t(dim));
    }
    uint64_t n = 1;
    bool ok = true;
    for (int64_t d : t.dims) ok = ok && checked_mul(n, uint64_t(d), &n);
    if (!ok || n > uint64_t(std::numeric_limits<int64_t>::max()))
      fail_input(path, what + ": element count overflows", "a size that fits 64 bits",
                 gguf_dims_string(t.dims));
    const uint32_t type = c.scalar<uint32_t>(what + " (type)");
    if (type != uint32_t(GgmlType::f32) && type != uint32_t(GgmlType::f16) &&
        type != uint32_t(GgmlType::bf16) && type != uint32_t(GgmlType::q8_0))
      fail_input(path, what + " has a tensor type kiln does not read",
                 "F32, F16, BF16 or Q8_0", ggml_type_name(type));
    t.type = GgmlType(type);
    const int64_t block = ggml_block_size(t.type);
    if (t.dims[0] % block != 0)
      fail_input(path, what + ": dims[0] is not a multiple of the " + ggml_type_name(t.type) +
                             " block",
                 "a multiple of " + s(uint64_t(block)), s(uint64_t(t.dims[0])));
    if (!checked_mul(n / uint64_t(block), ggml_block_bytes(t.type), &t.bytes))
      fail_input(path, what + ": byte size overflows", "a size that fits 64 bits",
                 gguf_dims_string(t.dims));
    t.offset = c.scalar<uint64_t>(what + " (offset)");
    if (t.offset % alignment != 0)
      fail_input(path, what + ": data offset is not aligned",
                 "a multiple of " + s(alignment), s(t.offset));
    out->push_back(std::move(t));
  }
}

// Writes one scalar of type t from an integer or a real.
void put_scalar(std::string& out, GgufValueType t, int64_t integer, double real) {
  auto put = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  switch (t) {
    case GgufValueType::u8: put(uint8_t(integer)); break;
    case GgufValueType::i8: put(int8_t(integer)); break;
    case GgufValueType::u16: put(uint16_t(integer)); break;
    case GgufValueType::i16: put(int16_t(integer)); break;
    case GgufValueType::u32: put(uint32_t(integer)); break;
    case GgufValueType::i32: put(int32_t(integer)); break;
    case GgufValueType::u64: put(uint64_t(integer)); break;
    case GgufValueType::i64: put(int64_t(integer)); break;
    case GgufValueType::boolean: put(uint8_t(integer != 0)); break;
    case GgufValueType::f32: put(float(real)); break;
    case GgufValueType::f64: put(double(real)); break;
    default: break;
  }
}

void put_u32(std::string& out, uint32_t v) { put_scalar(out, GgufValueType::u32, v, 0); }
void put_u64(std::string& out, uint64_t v) {
  put_scalar(out, GgufValueType::u64, int64_t(v), 0);
}
void put_string(std::string& out, const std::string& text) {
  put_u64(out, text.size());
  out += text;
}

void put_value(std::string& out, const GgufValue& v) {
  put_u32(out, uint32_t(v.type));
  if (v.type == GgufValueType::string) {
    put_string(out, v.text);
  } else if (v.type != GgufValueType::array) {
    put_scalar(out, v.type, v.integer, v.real);
  } else {
    put_u32(out, uint32_t(v.element));
    put_u64(out, v.array_size());
    if (v.element == GgufValueType::string)
      for (const std::string& t : v.texts) put_string(out, t);
    else if (v.element == GgufValueType::f32 || v.element == GgufValueType::f64)
      for (double r : v.reals) put_scalar(out, v.element, 0, r);
    else
      for (int64_t i : v.integers) put_scalar(out, v.element, i, 0);
  }
}

// Encodes one tensor's values into its type; InputError naming it when a value
// does not fit.
std::string encode_tensor(const GgufTensorToWrite& t, const std::string& path) {
  const int64_t n = GgufTensorInfo{t.name, t.dims, t.type, 0, 0}.numel();
  std::string out;
  if (t.type == GgmlType::f32) {
    out.assign(reinterpret_cast<const char*>(t.data), size_t(n) * 4);
  } else if (t.type == GgmlType::q8_0) {
    out.resize(size_t(n / kQ8_0Block * kQ8_0BlockBytes));
    if (!encode_q8_0(t.data, n, reinterpret_cast<uint8_t*>(out.data())))
      fail_input(path, "tensor \"" + t.name + "\" does not fit Q8_0",
                 "finite values with max|x| <= 65504 * 127", "a larger or non-finite value");
  } else {
    out.resize(size_t(n) * 2);
    for (int64_t i = 0; i < n; ++i) {
      const float x = t.data[i];
      const uint16_t h = t.type == GgmlType::f16 ? float_to_half(x) : float_to_bf16(x).bits;
      const float back = t.type == GgmlType::f16 ? half_to_float(h) : bf16_to_float(bf16{h});
      if (std::isfinite(x) && !std::isfinite(back))
        fail_input(path,
                   "tensor \"" + t.name + "\" element " + s(uint64_t(i)) + " is outside the range of " +
                       ggml_type_name(t.type),
                   "|x| < 65520 for F16 (use --type bf16 or f32)", std::to_string(x));
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

}  // namespace

// --- names and sizes ----------------------------------------------------------

const char* gguf_value_type_name(GgufValueType type) {
  static const char* const names[] = {"UINT8", "INT8",  "UINT16", "INT16", "UINT32",
                                      "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY",
                                      "UINT64", "INT64", "FLOAT64"};
  return uint32_t(type) <= 12 ? names[uint32_t(type)] : "unknown";
}

std::string ggml_type_name(uint32_t type) {
  static const char* const names[] = {
      "F32",     "F16",    "Q4_0",   "Q4_1",  "Q4_2",  "Q4_3",  "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",   "Q3_K",  "Q4_K",  "Q5_K",  "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",    "I64",   "F64",   "IQ1_M", "BF16"};
  if (type < sizeof(names) / sizeof(names[0])) return names[type];
  return "type " + s(type);
}

int64_t ggml_block_size(GgmlType type) { return type == GgmlType::q8_0 ? kQ8_0Block : 1; }

uint64_t ggml_block_bytes(GgmlType type) {
  switch (type) {
    case GgmlType::f32: return 4;
    case GgmlType::q8_0: return kQ8_0BlockBytes;
    default: return 2;
  }
}

std::string gguf_dims_string(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// --- values -------------------------------------------------------------------

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue g;
  g.type = GgufValueType::u32;
  g.integer = v;
  return g;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue g;
  g.type = GgufValueType::i32;
  g.integer = v;
  return g;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue g;
  g.type = GgufValueType::u64;
  g.integer = int64_t(v);
  return g;
}
GgufValue GgufValue::f32(float v) {
  GgufValue g;
  g.type = GgufValueType::f32;
  g.real = v;
  return g;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue g;
  g.type = GgufValueType::boolean;
  g.integer = v ? 1 : 0;
  return g;
}
GgufValue GgufValue::string(std::string v) {
  GgufValue g;
  g.type = GgufValueType::string;
  g.text = std::move(v);
  return g;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue g;
  g.type = GgufValueType::array;
  g.element = GgufValueType::string;
  g.texts = std::move(v);
  return g;
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  GgufValue g;
  g.type = GgufValueType::array;
  g.element = GgufValueType::f32;
  g.reals.assign(v.begin(), v.end());
  return g;
}
GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) {
  GgufValue g;
  g.type = GgufValueType::array;
  g.element = GgufValueType::i32;
  g.integers.assign(v.begin(), v.end());
  return g;
}

bool GgufValue::is_integer() const { return is_integer_type(type); }

size_t GgufValue::array_size() const {
  if (element == GgufValueType::string) return texts.size();
  if (element == GgufValueType::f32 || element == GgufValueType::f64) return reals.size();
  return integers.size();
}

// --- Q8_0 -----------------------------------------------------------------------

bool encode_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kQ8_0Block; ++b, x += kQ8_0Block, out += kQ8_0BlockBytes) {
    float amax = 0;
    for (int64_t i = 0; i < kQ8_0Block; ++i) {
      if (!std::isfinite(x[i])) return false;
      amax = std::max(amax, std::fabs(x[i]));
    }
    const uint16_t d16 = float_to_half(amax / 127.0f);
    const float d = half_to_float(d16);
    if (!std::isfinite(d)) return false;
    std::memcpy(out, &d16, 2);
    for (int64_t i = 0; i < kQ8_0Block; ++i) {
      // d rounds to fp16, so x / d may exceed 127 by a hair: clamp.
      const float q = d == 0 ? 0.0f : std::clamp(std::round(x[i] / d), -127.0f, 127.0f);
      out[2 + i] = uint8_t(int8_t(q));
    }
  }
  return true;
}

void decode_q8_0(const uint8_t* in, int64_t n, float* out) {
  for (int64_t b = 0; b < n / kQ8_0Block; ++b, in += kQ8_0BlockBytes, out += kQ8_0Block) {
    uint16_t d16;
    std::memcpy(&d16, in, 2);
    const float d = half_to_float(d16);
    for (int64_t i = 0; i < kQ8_0Block; ++i) out[i] = d * float(int8_t(in[2 + i]));
  }
}

// --- reader -------------------------------------------------------------------

GgufReader::GgufReader(const std::string& path) : file_(path) {
  Cursor c(file_);
  if (file_.size() < 24)
    fail_input(path, "file is too short for a GGUF header", "at least 24 bytes",
               s(file_.size()) + " bytes");
  const uint32_t magic = c.scalar<uint32_t>("the header");
  if (magic != kMagic) {
    char got[5] = {};
    std::memcpy(got, &magic, 4);
    for (char& ch : got)
      if (ch && (ch < 32 || ch > 126)) ch = '?';
    fail_input(path, "not a GGUF file (bad magic)", "\"GGUF\"", "\"" + std::string(got) + "\"");
  }
  version_ = c.scalar<uint32_t>("the header");
  if (version_ != 2 && version_ != kVersion)
    fail_input(path, "unsupported GGUF version", "2 or 3", s(version_));
  const uint64_t tensor_count = c.scalar<uint64_t>("the header");
  const uint64_t kv_count = c.scalar<uint64_t>("the header");
  // A key-value pair takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 4 + 8.
  if (kv_count > c.left() / 13)
    fail_input(path, "metadata count exceeds what the file can hold",
               "at most " + s(c.left() / 13), s(kv_count));
  if (tensor_count > c.left() / 24)
    fail_input(path, "tensor count exceeds what the file can hold",
               "at most " + s(c.left() / 24), s(tensor_count));
  read_metadata(c, kv_count, path, &metadata_);
  read_alignment();
  read_tensor_infos(c, tensor_count, path, alignment_, &tensors_);
  data_start_ = align_up(c.pos(), alignment_);
  place_data();
}

void GgufReader::read_alignment() {
  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufValueType::u32)
      fail_input(path(), "general.alignment has the wrong type", "UINT32",
                 gguf_value_type_name(a->type));
    const uint64_t al = uint64_t(a->integer);
    if (al == 0 || (al & (al - 1)) != 0)
      fail_input(path(), "general.alignment is not a power of two", "1, 2, 4, ..., 32, ...",
                 s(al));
    alignment_ = al;
  }
}



void GgufReader::place_data() {
  const uint64_t size = file_.size();
  if (data_start_ > size && !tensors_.empty())
    fail_input(path(), "file is truncated before the tensor data",
               "data at byte " + s(data_start_), s(size) + " bytes");
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : tensors_) {
    uint64_t end = 0;
    if (!checked_add(data_start_, t.offset, &end) || !checked_add(end, t.bytes, &end) ||
        end > size)
      fail_input(path(), "file is truncated: tensor \"" + t.name + "\" " +
                             gguf_dims_string(t.dims) + " " + ggml_type_name(t.type) +
                             " ends past the end of the file",
                 "at least " + s(end) + " bytes", s(size) + " bytes");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = *by_offset[i - 1];
    if (prev.offset + prev.bytes > by_offset[i]->offset)
      fail_input(path(), "tensor \"" + by_offset[i]->name + "\" overlaps tensor \"" + prev.name + "\"",
                 "offset at least " + s(prev.offset + prev.bytes), s(by_offset[i]->offset));
  }
}

const GgufValue* GgufReader::find(const std::string& key) const {
  for (const auto& [k, v] : metadata_)
    if (k == key) return &v;
  return nullptr;
}

std::optional<uint64_t> GgufReader::find_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer() || (v->type != GgufValueType::u64 && v->integer < 0))
    fail_input(path(), "metadata \"" + key + "\" is not a non-negative integer",
               "an unsigned integer", gguf_value_type_name(v->type));
  return uint64_t(v->integer);
}

uint64_t GgufReader::get_uint(const std::string& key) const {
  auto v = find_uint(key);
  if (!v) fail_input(path(), "metadata \"" + key + "\" is missing", "an integer", "nothing");
  return *v;
}

std::optional<double> GgufReader::find_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_float())
    fail_input(path(), "metadata \"" + key + "\" is not a float", "FLOAT32 or FLOAT64",
               gguf_value_type_name(v->type));
  return v->real;
}

double GgufReader::get_float(const std::string& key) const {
  auto v = find_float(key);
  if (!v) fail_input(path(), "metadata \"" + key + "\" is missing", "a float", "nothing");
  return *v;
}

std::string GgufReader::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_input(path(), "metadata \"" + key + "\" is missing", "a string", "nothing");
  if (v->type != GgufValueType::string)
    fail_input(path(), "metadata \"" + key + "\" is not a string", "STRING",
               gguf_value_type_name(v->type));
  return v->text;
}

const GgufTensorInfo* GgufReader::find_tensor(const std::string& name) const {
  for (const GgufTensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::string GgufReader::read_raw(const GgufTensorInfo& t) const {
  std::string bytes(t.bytes, '\0');
  file_.read_at(data_start_ + t.offset, bytes.data(), bytes.size());
  return bytes;
}

void GgufReader::read_f32(const GgufTensorInfo& t, float* out) const {
  const std::string raw = read_raw(t);
  const int64_t n = t.numel();
  switch (t.type) {
    case GgmlType::f32: std::memcpy(out, raw.data(), raw.size()); break;
    case GgmlType::q8_0: decode_q8_0(reinterpret_cast<const uint8_t*>(raw.data()), n, out); break;
    case GgmlType::f16:
    case GgmlType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        out[i] = t.type == GgmlType::f16 ? half_to_float(h) : bf16_to_float(bf16{h});
      }
      break;
  }
}

// --- writer -------------------------------------------------------------------

void GgufWriter::add(const std::string& key, GgufValue value) {
  for (const auto& [k, v] : metadata_)
    if (k == key) fail_input("GGUF metadata", "key \"" + key + "\" added twice", "unique keys", key);
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(GgufTensorToWrite tensor) {
  const std::string what = "tensor \"" + tensor.name + "\"";
  if (tensor.name.empty() || tensor.name.size() > kMaxNameBytes)
    fail_input("GGUF", what + ": name length out of range", "1 to 63 bytes",
               s(tensor.name.size()));
  for (const GgufTensorToWrite& t : tensors_)
    if (t.name == tensor.name) fail_input("GGUF", what + " added twice", "unique names", tensor.name);
  if (tensor.dims.empty() || tensor.dims.size() > size_t(kMaxDims))
    fail_input("GGUF", what + ": number of dimensions out of range", "1 to 4",
               s(tensor.dims.size()));
  for (int64_t d : tensor.dims)
    if (d <= 0) fail_input("GGUF", what + ": dimension out of range", "positive", std::to_string(d));
  if (tensor.dims[0] % ggml_block_size(tensor.type) != 0)
    fail_input("GGUF", what + ": dims[0] is not a multiple of the Q8_0 block", "a multiple of 32",
               std::to_string(tensor.dims[0]));
  tensors_.push_back(std::move(tensor));
}

FileDigest GgufWriter::write(const std::string& path) const {
  std::string head;
  put_u32(head, kMagic);
  put_u32(head, kVersion);
  put_u64(head, tensors_.size());
  put_u64(head, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(head, key);
    put_value(head, value);
  }
  uint64_t offset = 0;
  for (const GgufTensorToWrite& t : tensors_) {
    put_string(head, t.name);
    put_u32(head, uint32_t(t.dims.size()));
    for (int64_t d : t.dims) put_u64(head, uint64_t(d));
    put_u32(head, uint32_t(t.type));
    put_u64(head, offset);
    const GgufTensorInfo info{t.name, t.dims, t.type, 0, 0};
    offset = align_up(offset + uint64_t(info.numel()) / uint64_t(ggml_block_size(t.type)) *
                                   ggml_block_bytes(t.type),
                      kDefaultAlignment);
  }
  head.resize(align_up(head.size(), kDefaultAlignment), '\0');
  AtomicFile out(path);
  out.write(head);
  for (const GgufTensorToWrite& t : tensors_) {
    std::string bytes = encode_tensor(t, path);
    bytes.resize(align_up(bytes.size(), kDefaultAlignment), '\0');
    out.write(bytes);
  }
  return out.commit();
}

}  // namespace kiln
