// The decoders of tokenizer.json.
#include "tokenizer/hf_decoder.h"

#include "tokenizer/hf_byte_level.h"
#include "tokenizer/hf_regex.h"
#include "tokenizer/tokenizer.h"

namespace kiln::hf {
namespace {

// All tokens to raw bytes through GPT-2's alphabet (a token with a character
// outside it, e.g. an added token, keeps its own bytes), joined into one.
class ByteLevel final : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool, bool raw) const override {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
    std::string bytes;
    for (const std::string& t : tokens)
      if (!alphabet.decode(t, bytes)) bytes.append(t);
    tokens.assign(1, raw ? std::move(bytes) : lossy_utf8(bytes));
  }
  bool byte_level() const override { return true; }
};

// Runs of "<0xAB>" tokens become the UTF-8 they spell, or one U+FFFD per
// byte when the run is not valid UTF-8 (the library's rule).
class ByteFallback final : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool, bool raw) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (raw || lossy_utf8(run) == run) {
        out.push_back(run);
      } else {
        std::string bad;
        for (size_t i = 0; i < run_len; ++i) bad.append("\xEF\xBF\xBD");
        out.push_back(bad);
      }
      run.clear();
      run_len = 0;
    };
    for (std::string& t : tokens) {
      const int byte = byte_piece_value(t);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
        ++run_len;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class Fuse final : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool, bool) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Metaspace final : public Decoder {
 public:
  explicit Metaspace(const JsonAt& spec)
      : replacement_(spec.str_or("replacement", "\xE2\x96\x81")) {
    if (spec.has("prepend_scheme"))
      strip_first_ = spec["prepend_scheme"].str() != "never";
    else
      strip_first_ = spec.bool_or("add_prefix_space", true);
  }
  void decode(std::vector<std::string>& tokens, bool at_start, bool) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, replacement_.size(), replacement_) == 0) {
          out.push_back(' ');
          p += replacement_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      if (i == 0 && at_start && strip_first_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_ = true;
};

// Removes up to `start` leading and `stop` trailing `content` characters.
class Strip final : public Decoder {
 public:
  explicit Strip(const JsonAt& spec)
      : content_(spec["content"].str()),
        start_(static_cast<size_t>(spec["start"].integer())),
        stop_(static_cast<size_t>(spec["stop"].integer())) {}
  void decode(std::vector<std::string>& tokens, bool, bool) const override {
    if (content_.empty()) return;
    for (std::string& t : tokens) {
      size_t n = 0;
      while (n < start_ && t.compare(0, content_.size(), content_) == 0) {
        t.erase(0, content_.size());
        ++n;
      }
      n = 0;
      while (n < stop_ && t.size() >= content_.size() &&
             t.compare(t.size() - content_.size(), content_.size(), content_) == 0) {
        t.resize(t.size() - content_.size());
        ++n;
      }
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class Replace final : public Decoder {
 public:
  explicit Replace(const JsonAt& spec)
      : regex_(parse_pattern(spec["pattern"], literal_)), content_(spec["content"].str()) {}
  void decode(std::vector<std::string>& tokens, bool, bool) const override {
    std::vector<std::pair<size_t, size_t>> hits;
    for (std::string& t : tokens) {
      hits.clear();
      if (regex_) {
        regex_->find_all(t, hits);
      } else if (!literal_.empty()) {
        for (size_t at = t.find(literal_); at != std::string::npos;
             at = t.find(literal_, at + literal_.size()))
          hits.emplace_back(at, at + literal_.size());
      }
      if (hits.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [b, e] : hits) {
        out.append(t, prev, b - prev).append(content_);
        prev = e;
      }
      t = out.append(t, prev);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode(std::vector<std::string>& tokens, bool at_start, bool raw) const override {
    for (const auto& s : steps_) s->decode(tokens, at_start, raw);
  }
  bool byte_level() const override {
    for (const auto& s : steps_)
      if (s->byte_level()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const JsonAt& spec) {
  if (spec.is_null()) return nullptr;
  spec.expect_object();
  const JsonAt type = spec["type"];
  const std::string t = type.str();
  if (t == "ByteLevel") return std::make_unique<ByteLevel>();
  if (t == "ByteFallback") return std::make_unique<ByteFallback>();
  if (t == "Fuse") return std::make_unique<Fuse>();
  if (t == "Metaspace") return std::make_unique<Metaspace>(spec);
  if (t == "Strip") return std::make_unique<Strip>(spec);
  if (t == "Replace") return std::make_unique<Replace>(spec);
  if (t == "Sequence") {
    const JsonAt list = spec["decoders"];
    list.expect_array();
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_decoder(list.at(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  type.unsupported();
}

}  // namespace kiln::hf
