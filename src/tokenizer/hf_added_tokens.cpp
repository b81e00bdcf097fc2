// Matching added tokens in raw or normalized text.
#include "tokenizer/hf_added_tokens.h"

#include <algorithm>
#include <cctype>

namespace kiln::hf {
namespace {
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// A word character for single_word: ASCII letters, digits and '_', and every
// non-ASCII character (letters of other scripts; conservative for symbols).
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}
}  // namespace

void AddedTokens::read(const JsonAt& list) {
  if (list.is_null()) return;
  list.expect_array();
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonAt t = list.at(i);
    t.expect_object();
    AddedToken a;
    const int64_t id = t["id"].integer();
    if (id < 0 || id > INT32_MAX) t["id"].fail("bad id", "0 <= id < 2^31", std::to_string(id));
    a.id = static_cast<int32_t>(id);
    a.content = t["content"].str();
    if (a.content.empty()) t["content"].fail("an added token cannot be empty");
    a.special = t.bool_or("special", false);
    a.normalized = t.bool_or("normalized", !a.special);
    a.lstrip = t.bool_or("lstrip", false);
    a.rstrip = t.bool_or("rstrip", false);
    a.single_word = t.bool_or("single_word", false);
    tokens_.push_back(std::move(a));
  }
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  for (auto& v : by_first_byte_)
    std::stable_sort(v.begin(), v.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
}

bool AddedTokens::matches_at(std::string_view text, size_t pos, const AddedToken& t) const {
  if (text.compare(pos, t.content.size(), t.content) != 0) return false;
  if (!t.single_word) return true;
  const size_t end = pos + t.content.size();
  const bool left_ok = pos == 0 || !is_word_byte(text[pos - 1]);
  const bool right_ok = end == text.size() || !is_word_byte(text[end]);
  return left_ok && right_ok;
}

void AddedTokens::split(std::string_view text, bool normalized, bool parse_special,
                        std::vector<Segment>& out) const {
  out.clear();
  size_t done = 0;  // text before `done` is already in `out`
  for (size_t pos = 0; pos < text.size(); ++pos) {
    const AddedToken* hit = nullptr;
    for (uint32_t i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& t = tokens_[i];
      if (t.normalized != normalized || (t.special && !parse_special)) continue;
      if (matches_at(text, pos, t)) {
        hit = &t;
        break;
      }
    }
    if (!hit) continue;
    size_t begin = pos, end = pos + hit->content.size();
    if (hit->lstrip)
      while (begin > done && is_space(text[begin - 1])) --begin;
    if (hit->rstrip)
      while (end < text.size() && is_space(text[end])) ++end;
    if (begin > done) out.push_back({text.substr(done, begin - done), -1, done});
    out.push_back({text.substr(begin, end - begin), hit->id, begin});
    done = end;
    pos = end - 1;
  }
  if (done < text.size()) out.push_back({text.substr(done), -1, done});
}

}  // namespace kiln::hf
