#include "io/atomic_file.h"
#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln {

static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

// The safetensors spec caps the header at 100 MB; a larger N is a damaged or
// hostile file, and refusing it keeps us from allocating on its say-so.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::string u64(uint64_t v) { return std::to_string(v); }

// Reads a JSON value as a non-negative integer that fits in uint64.
bool as_u64(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = uint64_t(s);
    return true;
  }
  return false;
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// --- reading ----------------------------------------------------------------------

SafetensorsReader::SafetensorsReader(const std::string& path) : file_(path) {
  if (file_.size() < 8)
    fail_input(path, "safetensors file is too short for its header length", "at least 8 bytes",
               u64(file_.size()) + " bytes");
  uint64_t header_len = 0;
  file_.read_at(0, &header_len, 8);
  if (header_len > kMaxHeaderBytes)
    fail_input(path, "safetensors header length is implausibly large",
               "at most " + u64(kMaxHeaderBytes) + " bytes", u64(header_len) + " bytes");
  // 8 + N must fit inside the file (N is small now, so the sum cannot overflow).
  if (header_len > file_.size() - 8)
    fail_input(path, "safetensors header runs past the end of the file",
               "header length <= " + u64(file_.size() - 8), u64(header_len));
  data_start_ = 8 + header_len;
  std::string header(header_len, '\0');
  file_.read_at(8, header.data(), header.size());
  parse_header(header);
}

void SafetensorsReader::parse_header(const std::string& header_json) {
  const std::string& where = file_.path();
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_json);
  } catch (const nlohmann::json::exception& e) {
    fail_input(where, std::string("safetensors header is not valid JSON: ") + e.what());
  }
  if (!header.is_object())
    fail_input(where, "safetensors header must be a JSON object", "an object", header.type_name());
  const uint64_t buffer_size = file_.size() - data_start_;

  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object())
        fail_input(where, "__metadata__ must be an object of strings", "an object",
                   info.type_name());
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string())
          fail_input(where, "__metadata__ value \"" + key + "\" must be a string", "a string",
                     value.type_name());
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string field = "tensor \"" + name + "\"";
    if (!info.is_object())
      fail_input(where, field + " must be an object", "an object", info.type_name());
    auto dtype_it = info.find("dtype");
    auto shape_it = info.find("shape");
    auto offsets_it = info.find("data_offsets");
    if (dtype_it == info.end() || !dtype_it->is_string())
      fail_input(where, field + " has no string \"dtype\"");
    if (shape_it == info.end() || !shape_it->is_array())
      fail_input(where, field + " has no \"shape\" array");
    if (offsets_it == info.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      fail_input(where, field + " needs \"data_offsets\": [begin, end]");

    SafetensorsEntry e;
    e.name = name;
    e.dtype = dtype_it->get<std::string>();
    const size_t elem = safetensors_dtype_size(e.dtype);
    if (elem == 0)
      fail_input(where, field + " has an unknown dtype",
                 "one of F32, BF16, F16, F64, I8..I64, U8..U64, BOOL, F8_E5M2, F8_E4M3", e.dtype);
    // Element count as an overflow-checked product: a hostile shape must not wrap.
    uint64_t bytes = elem;
    for (const auto& dim : *shape_it) {
      uint64_t d;
      if (!as_u64(dim, &d) || d > uint64_t(INT64_MAX))
        fail_input(where, field + " has a bad shape entry", "a non-negative integer", dim.dump());
      if (!checked_mul(bytes, d, &bytes))
        fail_input(where, field + " shape is too large to address", "a product below 2^64 bytes",
                   shape_it->dump());
      e.shape.push_back(int64_t(d));
    }
    if (!as_u64((*offsets_it)[0], &e.begin) || !as_u64((*offsets_it)[1], &e.end))
      fail_input(where, field + " data_offsets must be non-negative integers", "[begin, end]",
                 offsets_it->dump());
    if (e.begin > e.end)
      fail_input(where, field + " data_offsets are reversed", "begin <= end", offsets_it->dump());
    if (e.end > buffer_size)
      fail_input(where, field + " data_offsets run past the end of the file",
                 "end <= " + u64(buffer_size), u64(e.end));
    if (e.end - e.begin != bytes)
      fail_input(where, field + " byte range does not match its dtype and shape",
                 u64(bytes) + " bytes (" + e.dtype + " " + shape_string(e.shape) + ")",
                 u64(e.end - e.begin) + " bytes");
    entries_.push_back(std::move(e));
  }

  // Contiguous, non-overlapping, covering the buffer: sorted by begin, each
  // tensor starts exactly where the previous one ended and the last ends at the
  // end of the file. Zero-sized tensors sort before a non-empty one at the same begin.
  std::sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  for (const auto& e : entries_) {
    if (e.begin < expected_begin)
      fail_input(where, "tensor \"" + e.name + "\" overlaps the tensor before it",
                 "begin >= " + u64(expected_begin), u64(e.begin));
    if (e.begin > expected_begin)
      fail_input(where, "gap in the data buffer before tensor \"" + e.name + "\"",
                 "begin = " + u64(expected_begin), u64(e.begin));
    expected_begin = e.end;
  }
  if (expected_begin != buffer_size)
    fail_input(where, "tensors do not cover the data buffer (trailing bytes)",
               u64(expected_begin) + " data bytes", u64(buffer_size) + " data bytes");
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

const SafetensorsEntry* SafetensorsReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

void SafetensorsReader::read_raw(const SafetensorsEntry& entry, void* out) const {
  file_.read_at(data_start_ + entry.begin, out, size_t(entry.end - entry.begin));
}

void SafetensorsReader::read_f32(const std::string& name, float* out, int64_t count) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail_input(path(), "tensor \"" + name + "\" is missing");
  if (e->numel() != count)
    fail_input(path(), "tensor \"" + name + "\" has the wrong number of elements",
               std::to_string(count), std::to_string(e->numel()) + " " + shape_string(e->shape));
  if (e->dtype == "F32") {
    read_raw(*e, out);
    return;
  }
  if (e->dtype != "BF16" && e->dtype != "F16")
    fail_input(path(), "tensor \"" + name + "\" has a dtype Kiln cannot read as fp32",
               "F32, BF16 or F16", e->dtype);
  // 16-bit elements: read in chunks and widen into `out`.
  const bool is_bf16 = e->dtype == "BF16";
  std::vector<uint16_t> chunk(size_t(std::min<int64_t>(count, int64_t(1) << 18)));
  for (int64_t i = 0; i < count;) {
    const int64_t n = std::min<int64_t>(int64_t(chunk.size()), count - i);
    file_.read_at(data_start_ + e->begin + uint64_t(i) * 2, chunk.data(), size_t(n) * 2);
    for (int64_t j = 0; j < n; ++j)
      out[i + j] = is_bf16 ? bf16_to_float(bf16{chunk[j]}) : half_to_float(chunk[j]);
    i += n;
  }
}

std::vector<float> SafetensorsReader::read_f32(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail_input(path(), "tensor \"" + name + "\" is missing");
  std::vector<float> out(size_t(e->numel()));
  read_f32(name, out.data(), e->numel());
  return out;
}

// --- writing ----------------------------------------------------------------------

FileDigest write_safetensors(const std::string& path,
                             const std::vector<SafetensorsTensorRef>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the caller's order, which is also their
  // order in the buffer, so the file reads naturally.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      fail_runtime(path, "invalid tensor name \"" + t.name + "\"");
    if (header.contains(t.name)) fail_runtime(path, "duplicate tensor name \"" + t.name + "\"");
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0 || !checked_mul(bytes, uint64_t(d), &bytes))
        fail_runtime(path,
                     "tensor \"" + t.name + "\" has an invalid shape " + shape_string(t.shape));
    }
    if (bytes > 0 && !t.data) fail_runtime(path, "tensor \"" + t.name + "\" has no data");
    header[t.name] = {{"dtype", t.dtype == DType::f32 ? "F32" : "BF16"},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  // Pad with spaces (valid JSON whitespace) so 8 + N, the buffer start, is 8-byte aligned.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_len = header_text.size();

  AtomicFile file(path);
  file.write(&header_len, 8);
  file.write(header_text);
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    if (numel > 0) file.write(t.data, size_t(numel) * dtype_size(t.dtype));
  }
  return file.commit();
}

}  // namespace kiln
