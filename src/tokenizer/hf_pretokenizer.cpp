// The pre-tokenizers of tokenizer.json, built on one "split by matches with a
// delimiter behaviour" step as the Hugging Face library defines them.
#include "tokenizer/hf_pretokenizer.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/hf_byte_level.h"
#include "tokenizer/hf_regex.h"

namespace kiln::hf {
namespace {

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct Segment {
  size_t begin, end;
  bool match;
};
using Ranges = std::vector<std::pair<size_t, size_t>>;

// Matches and the gaps between them, covering all of [0, size).
std::vector<Segment> segments(size_t size, const Ranges& matches, bool invert) {
  std::vector<Segment> out;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) out.push_back({prev, b, invert});
    out.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < size) out.push_back({prev, size, invert});
  return out;
}

// The pieces a behaviour makes of the segments (the library's rules, including
// that a match merges into a neighbour only when that neighbour is no match).
Ranges apply_behavior(const std::vector<Segment>& segs, Behavior behavior) {
  Ranges out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::removed:
      for (const auto& s : segs)
        if (!s.match) out.emplace_back(s.begin, s.end);
      break;
    case Behavior::isolated:
      for (const auto& s : segs) out.emplace_back(s.begin, s.end);
      break;
    case Behavior::merged_with_previous:
      for (const auto& s : segs) {
        if (s.match && !previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.begin, s.end);
        previous_match = s.match;
      }
      break;
    case Behavior::merged_with_next:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !previous_match && !out.empty())
          out.back().first = it->begin;
        else
          out.emplace_back(it->begin, it->end);
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case Behavior::contiguous:
      for (size_t i = 0; i < segs.size(); ++i) {
        if (i > 0 && segs[i].match == previous_match)
          out.back().second = segs[i].end;
        else
          out.emplace_back(segs[i].begin, segs[i].end);
        previous_match = segs[i].match;
      }
      break;
  }
  return out;
}

// Splits every word where `find` reports matches.
template <typename Find>
void split_words(std::vector<Word>& words, Behavior behavior, bool invert, Find&& find) {
  std::vector<Word> out;
  out.reserve(words.size() * 2);
  Ranges matches;
  for (Word& w : words) {
    find(w.text, matches);
    if (matches.empty() && !invert) {  // one unmatched segment: every behaviour keeps it
      if (!w.text.empty()) out.push_back(std::move(w));
      continue;
    }
    const Ranges pieces = apply_behavior(segments(w.text.size(), matches, invert), behavior);
    for (auto [b, e] : pieces)
      if (e > b) out.push_back({w.text.substr(b, e - b), w.first && b == 0});
  }
  words = std::move(out);
}

Behavior parse_behavior(const JsonAt& j) {
  const std::string b = j.str();
  if (b == "Removed") return Behavior::removed;
  if (b == "Isolated") return Behavior::isolated;
  if (b == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (b == "MergedWithNext") return Behavior::merged_with_next;
  if (b == "Contiguous") return Behavior::contiguous;
  j.unsupported();
}

void find_literal(std::string_view text, std::string_view literal, Ranges& out) {
  out.clear();
  if (literal.empty()) return;
  for (size_t at = text.find(literal); at != std::string_view::npos;
       at = text.find(literal, at + literal.size()))
    out.emplace_back(at, at + literal.size());
}

class Split final : public PreTokenizer {
 public:
  explicit Split(const JsonAt& spec)
      : regex_(parse_pattern(spec["pattern"], literal_)),
        behavior_(parse_behavior(spec["behavior"])),
        invert_(spec.bool_or("invert", false)) {}
  void apply(std::vector<Word>& words) const override {
    split_words(words, behavior_, invert_, [&](std::string_view text, Ranges& m) {
      if (regex_)
        regex_->find_all(text, m);
      else
        find_literal(text, literal_, m);
    });
  }
  std::string describe() const override { return "Split"; }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

// GPT-2's own pattern, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  explicit ByteLevel(const JsonAt& spec)
      : add_prefix_space_(spec.bool_or("add_prefix_space", true)),
        regex_(spec.bool_or("use_regex", true)
                   ? std::make_unique<Regex>(kGpt2Pattern, spec.file(), spec.path())
                   : nullptr) {}
  void apply(std::vector<Word>& words) const override {
    if (add_prefix_space_)  // the library prepends to every piece, not only the first
      for (Word& w : words)
        if (w.text.empty() || w.text[0] != ' ') w.text.insert(0, 1, ' ');
    if (regex_)
      split_words(words, Behavior::isolated, false,
                  [&](std::string_view text, Ranges& m) { regex_->find_all(text, m); });
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
    std::string mapped;
    for (Word& w : words) {
      mapped.clear();
      alphabet.encode(w.text, mapped);
      w.text.swap(mapped);
    }
  }
  std::string describe() const override { return regex_ ? "ByteLevel(regex)" : "ByteLevel"; }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

// Unicode numbers (Nd, Nl, No), as Rust's char::is_numeric.
void find_digits(std::string_view text, Ranges& out) {
  out.clear();
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const uint32_t cp = next_code_point(text, pos);
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    if (cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO)
      out.emplace_back(start, pos);
  }
}

class Digits final : public PreTokenizer {
 public:
  explicit Digits(const JsonAt& spec) : individual_(spec.bool_or("individual_digits", false)) {}
  void apply(std::vector<Word>& words) const override {
    split_words(words, individual_ ? Behavior::isolated : Behavior::contiguous, false, find_digits);
  }
  std::string describe() const override { return "Digits"; }

 private:
  bool individual_;
};

class Metaspace final : public PreTokenizer {
 public:
  explicit Metaspace(const JsonAt& spec)
      : replacement_(spec.str_or("replacement", "\xE2\x96\x81")),
        split_(spec.bool_or("split", true)) {
    if (spec.has("prepend_scheme")) {
      const JsonAt s = spec["prepend_scheme"];
      const std::string v = s.str();
      if (v == "always")
        scheme_ = 'a';
      else if (v == "first")
        scheme_ = 'f';
      else if (v == "never")
        scheme_ = 'n';
      else
        s.unsupported();
    } else {
      scheme_ = spec.bool_or("add_prefix_space", true) ? 'a' : 'n';
    }
  }
  void apply(std::vector<Word>& words) const override {
    for (Word& w : words) {
      std::string out;
      for (char c : w.text) {
        if (c == ' ')
          out.append(replacement_);
        else
          out.push_back(c);
      }
      const bool starts = out.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == 'a' || (scheme_ == 'f' && w.first))) out.insert(0, replacement_);
      w.text = std::move(out);
    }
    if (split_)
      split_words(words, Behavior::merged_with_next, false,
                  [&](std::string_view text, Ranges& m) { find_literal(text, replacement_, m); });
  }
  std::string describe() const override { return "Metaspace"; }

 private:
  std::string replacement_;
  bool split_;
  char scheme_ = 'a';
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<Word>& words) const override {
    for (const auto& s : steps_) s->apply(words);
  }
  std::string describe() const override {
    std::string out;
    for (const auto& s : steps_) out += (out.empty() ? "" : " -> ") + s->describe();
    return out;
  }
  bool byte_level() const override {
    for (const auto& s : steps_)
      if (s->byte_level()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonAt& spec) {
  if (spec.is_null()) return nullptr;
  spec.expect_object();
  const JsonAt type = spec["type"];
  const std::string t = type.str();
  if (t == "ByteLevel") return std::make_unique<ByteLevel>(spec);
  if (t == "Split") return std::make_unique<Split>(spec);
  if (t == "Digits") return std::make_unique<Digits>(spec);
  if (t == "Metaspace") return std::make_unique<Metaspace>(spec);
  if (t == "Sequence") {
    const JsonAt list = spec["pretokenizers"];
    list.expect_array();
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_pre_tokenizer(list.at(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  type.unsupported();
}

}  // namespace kiln::hf
