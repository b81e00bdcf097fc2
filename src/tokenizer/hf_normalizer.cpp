// The normalizers of tokenizer.json.
#include "tokenizer/hf_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <string_view>
#include <vector>

#include "tokenizer/hf_regex.h"

namespace kiln::hf {
namespace {

// Only the stretches with non-ASCII characters go through utf8proc: ASCII is
// stable under every normal form, and an ASCII character never composes with
// what follows it except when it is the starter of a combining sequence -- so
// each non-ASCII run is normalized together with the one character before it.
class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    size_t pos = 0;
    while (pos < text.size() && static_cast<unsigned char>(text[pos]) < 0x80) ++pos;
    if (pos == text.size()) return;
    std::string out(text, 0, pos > 0 ? pos - 1 : 0);
    while (pos < text.size()) {
      const size_t begin =
          pos > 0 && static_cast<unsigned char>(text[pos - 1]) < 0x80 ? pos - 1 : pos;
      while (pos < text.size() && static_cast<unsigned char>(text[pos]) >= 0x80) ++pos;
      append_normalized(std::string_view(text).substr(begin, pos - begin), out);
      const size_t ascii = pos;
      while (pos < text.size() && static_cast<unsigned char>(text[pos]) < 0x80) ++pos;
      // The last ASCII character waits: it may start the next run's sequence.
      const size_t keep = pos < text.size() ? pos - 1 : pos;
      if (keep > ascii) out.append(text, ascii, keep - ascii);
    }
    text = std::move(out);
  }

 private:
  void append_normalized(std::string_view chunk, std::string& out) const {
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(chunk.data()),
                                            static_cast<utf8proc_ssize_t>(chunk.size()), &mapped,
                                            static_cast<utf8proc_option_t>(options_));
    if (n < 0) {  // only on malformed UTF-8, which encode() has replaced already
      out.append(chunk);
      return;
    }
    out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    std::free(mapped);
  }
  int options_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Replace final : public Normalizer {
 public:
  Replace(std::string literal, std::unique_ptr<Regex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    std::vector<std::pair<size_t, size_t>> hits;
    if (regex_) {
      regex_->find_all(text, hits);
    } else if (!literal_.empty()) {
      for (size_t at = text.find(literal_); at != std::string::npos;
           at = text.find(literal_, at + literal_.size()))
        hits.emplace_back(at, at + literal_.size());
    }
    if (hits.empty()) return;
    std::string out;
    size_t prev = 0;
    for (auto [b, e] : hits) {
      out.append(text, prev, b - prev).append(content_);
      prev = e;
    }
    out.append(text, prev);
    text = std::move(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : steps_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonAt& spec) {
  if (spec.is_null()) return nullptr;
  spec.expect_object();
  const JsonAt type = spec["type"];
  const std::string t = type.str();
  if (t == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (t == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (t == "NFKC")
    return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (t == "NFKD")
    return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (t == "Prepend") return std::make_unique<Prepend>(spec["prepend"].str());
  if (t == "Replace") {
    std::string literal;
    auto regex = parse_pattern(spec["pattern"], literal);
    return std::make_unique<Replace>(std::move(literal), std::move(regex), spec["content"].str());
  }
  if (t == "Sequence") {
    const JsonAt list = spec["normalizers"];
    list.expect_array();
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_normalizer(list.at(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  type.unsupported();
}

}  // namespace kiln::hf
