#include "data/document_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln {
namespace fs = std::filesystem;

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool is_json_extension(const std::string& ext) { return ext == ".json" || ext == ".jsonl"; }
bool is_text_extension(const std::string& ext) {
  return ext == ".txt" || ext == ".text" || ext == ".md";
}

// Collects the "text" / "story" string of each document object. Document
// objects sit at `doc_depth` (1 for a JSON Lines record, 2 inside a top-level
// array); anything nested deeper (TinyStories' "instruction" object) is ignored.
class DocumentSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  DocumentSax(int doc_depth, const std::function<void(std::string&&)>& on_doc)
      : doc_depth_(doc_depth), on_doc_(on_doc) {}

  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t) override { return scalar(); }
  bool number_unsigned(number_unsigned_t) override { return scalar(); }
  bool number_float(number_float_t, const string_t&) override { return scalar(); }
  bool binary(binary_t&) override { return scalar(); }
  bool string(string_t& value) override {
    if (!scalar()) return false;
    if (depth_ == doc_depth_ && in_object_) {
      if (key_ == "text") text_ = std::move(value), has_text_ = true;
      if (key_ == "story") story_ = std::move(value), has_story_ = true;
    }
    return true;
  }
  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == doc_depth_) {
      in_object_ = true;
      has_text_ = has_story_ = false;
      text_.clear();
      story_.clear();
    } else if (depth_ < doc_depth_) {
      return fail("expected " + expectation());
    }
    return true;
  }
  bool key(string_t& k) override {
    if (depth_ == doc_depth_) key_ = k;
    return true;
  }
  bool end_object() override {
    if (depth_ == doc_depth_) {
      in_object_ = false;
      if (has_text_)
        on_doc_(std::move(text_));
      else if (has_story_)
        on_doc_(std::move(story_));
      else
        return fail("object " + std::to_string(objects_) + " has no \"text\" or \"story\" string");
      ++objects_;
    }
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == doc_depth_) return fail("expected " + expectation() + ", found an array");
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    if (auto cut = what.find("] "); cut != std::string::npos) what = what.substr(cut + 2);
    error_ = "invalid JSON near byte " + std::to_string(position) + ": " + what;
    return false;
  }

  const std::string& error() const { return error_; }
  uint64_t objects() const { return objects_; }

 private:
  bool scalar() {
    if (depth_ < doc_depth_) return fail("expected " + expectation());
    return true;
  }
  bool fail(std::string why) {
    error_ = std::move(why);
    return false;
  }
  std::string expectation() const {
    return doc_depth_ == 1 ? "a JSON object per line" : "an array of JSON objects";
  }

  int doc_depth_;
  const std::function<void(std::string&&)>& on_doc_;
  int depth_ = 0;
  bool in_object_ = false;
  std::string key_;
  std::string text_, story_;
  bool has_text_ = false, has_story_ = false;
  uint64_t objects_ = 0;
  std::string error_;
};

void emit_trimmed(std::string&& doc, const std::function<void(std::string&&)>& sink) {
  std::string_view t = trim_whitespace(doc);
  if (t.empty()) return;
  if (t.size() == doc.size()) {
    sink(std::move(doc));
  } else {
    sink(std::string(t));
  }
}

void read_text(const TextInput& file, std::ifstream& in, const DocumentOptions& options,
               const std::function<void(std::string&&)>& sink,
               const std::function<void(uint64_t)>& progress) {
  std::string line, doc;
  uint64_t consumed = 0, last_report = 0;
  while (std::getline(in, line)) {
    consumed += line.size() + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool blank = trim_whitespace(line).empty();
    if (options.line_per_doc) {
      if (!blank) emit_trimmed(std::move(line), sink);
    } else if (blank) {
      if (!doc.empty()) emit_trimmed(std::move(doc), sink);
      doc.clear();
    } else {
      if (!doc.empty()) doc.push_back('\n');
      doc.append(line);
    }
    if (progress && consumed - last_report > (1u << 20)) {
      progress(consumed);
      last_report = consumed;
    }
  }
  if (in.bad()) fail_input(file.path, "read error: " + std::string(std::strerror(errno)));
  if (!doc.empty()) emit_trimmed(std::move(doc), sink);
}

void read_json(const TextInput& file, std::ifstream& in,
               const std::function<void(std::string&&)>& sink,
               const std::function<void(uint64_t)>& progress) {
  // Peek at the first non-space byte: '[' means one array, '{' JSON Lines.
  char first = 0;
  while (in.get(first) && is_space(first)) {
  }
  if (!in) return;  // whitespace only: no documents
  in.unget();
  auto on_doc = [&](std::string&& doc) { emit_trimmed(std::move(doc), sink); };
  if (first == '[') {
    uint64_t reported = 0;
    std::function<void(std::string &&)> doc_with_progress = [&](std::string&& doc) {
      on_doc(std::move(doc));
      if (progress && (reported++ % 256) == 0) progress(static_cast<uint64_t>(in.tellg()));
    };
    DocumentSax sax(2, doc_with_progress);
    if (!nlohmann::json::sax_parse(in, &sax)) fail_input(file.path, sax.error());
    return;
  }
  if (first != '{')
    fail_input(file.path, "not JSON Lines or a JSON array", "'{' or '[' as the first character",
               std::string("'") + first + "'");
  std::function<void(std::string &&)> doc_fn = on_doc;
  std::string line;
  uint64_t line_no = 0, consumed = 0, last_report = 0;
  while (std::getline(in, line)) {
    ++line_no;
    consumed += line.size() + 1;
    if (trim_whitespace(line).empty()) continue;
    DocumentSax sax(1, doc_fn);
    if (!nlohmann::json::sax_parse(line, &sax))
      fail_input(file.path + ":" + std::to_string(line_no), sax.error());
    if (sax.objects() != 1)
      fail_input(file.path + ":" + std::to_string(line_no), "expected one JSON object on the line");
    if (progress && consumed - last_report > (1u << 20)) {
      progress(consumed);
      last_report = consumed;
    }
  }
  if (in.bad()) fail_input(file.path, "read error: " + std::string(std::strerror(errno)));
}

}  // namespace

std::string_view trim_whitespace(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  return text.substr(b, e - b);
}

TextFormat parse_text_format(const std::string& name, const std::string& flag) {
  if (name == "auto") return TextFormat::automatic;
  if (name == "text") return TextFormat::text;
  if (name == "jsonl" || name == "json") return TextFormat::jsonl;
  fail_input(flag, "unknown input format", "auto, text or jsonl", name);
}

const char* text_format_name(TextFormat format) {
  switch (format) {
    case TextFormat::automatic:
      return "auto";
    case TextFormat::text:
      return "text";
    case TextFormat::jsonl:
      return "jsonl";
  }
  return "?";
}

std::vector<TextInput> expand_inputs(const std::vector<std::string>& paths, TextFormat format) {
  if (paths.empty()) fail_input("--input", "no input files given");
  std::vector<TextInput> files;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    const uint64_t size = fs::file_size(p, ec);
    if (ec) fail_input(p.string(), "cannot read input file: " + ec.message());
    TextFormat f = format;
    if (f == TextFormat::automatic)
      f = is_json_extension(lower_extension(p)) ? TextFormat::jsonl : TextFormat::text;
    files.push_back({p.string(), f, size});
  };
  for (const std::string& path : paths) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) fail_input(path, "input does not exist");
    if (fs::is_regular_file(status)) {
      add(path);
      continue;
    }
    if (!fs::is_directory(status)) fail_input(path, "input is neither a file nor a directory");
    std::vector<fs::path> found;
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file()) continue;
      const std::string ext = lower_extension(it->path());
      const bool take = format == TextFormat::text ? true
                        : format == TextFormat::jsonl
                            ? is_json_extension(ext)
                            : is_json_extension(ext) || is_text_extension(ext);
      if (take) found.push_back(it->path());
    }
    if (ec) fail_input(path, "cannot list directory: " + ec.message());
    if (found.empty())
      fail_input(path, "directory holds no input files",
                 format == TextFormat::jsonl ? "*.json or *.jsonl"
                                             : "*.txt, *.text, *.md, *.json or *.jsonl",
                 "none");
    std::sort(found.begin(), found.end());
    for (const auto& p : found) add(p);
  }
  return files;
}

void read_documents(const TextInput& file, const DocumentOptions& options,
                    const std::function<void(std::string&&)>& sink,
                    const std::function<void(uint64_t)>& progress) {
  std::ifstream in(file.path, std::ios::binary);
  if (!in) fail_input(file.path, "cannot open input: " + std::string(std::strerror(errno)));
  if (file.format == TextFormat::jsonl)
    read_json(file, in, sink, progress);
  else
    read_text(file, in, options, sink, progress);
  if (progress) progress(file.bytes);
}

}  // namespace kiln
