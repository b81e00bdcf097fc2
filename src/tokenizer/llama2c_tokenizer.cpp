// BPE encoding by piece scores, written to give the same ids as SentencePiece's
// BPE model for the same vocabulary:
//
//   1. normalise: U+FFFD for malformed bytes, " " -> "▁", dummy-prefix "▁";
//   2. split into UTF-8 characters (one symbol each);
//   3. repeatedly merge the adjacent pair whose concatenation is a normal piece
//      with the highest score, the leftmost pair winning ties;
//   4. each final symbol is its piece id, or, when it is not a piece, its UTF-8
//      bytes as <0xXX> byte pieces (unk when the vocabulary has no byte pieces).
//
// llama2.c's run.c rescans all pairs after every merge (quadratic in the text
// length); here candidate pairs sit in a max-heap and stale entries are skipped
// when popped, which performs the same merges in the same order in O(n log n).
#include "tokenizer/llama2c_tokenizer.h"

#include <cmath>
#include <cstring>
#include <queue>

#include "core/error.h"

namespace kiln {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // "▁"
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr int32_t kMaxTokenLength = 1 << 16;

template <typename T>
T load_le(const std::string& bytes, size_t pos) {
  T value;
  std::memcpy(&value, bytes.data() + pos, sizeof(T));
  return value;
}

std::string spaces_to_symbol(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == ' ')
      out.append(kSpaceSymbol);
    else
      out.push_back(c);
  }
  return out;
}

// One symbol of the text being merged: a byte range of the normalised text and
// its neighbours in the doubly-linked list of live symbols.
struct Symbol {
  uint32_t begin;
  uint32_t size;  // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

struct Candidate {
  float score;
  int32_t left;
  int32_t right;
  uint32_t size;  // left.size + right.size when queued; a mismatch means stale
};

// Max-heap order: higher score first, then the leftmost pair.
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  }
};

}  // namespace

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::parse(const std::string& path,
                                                          const std::string& bytes,
                                                          std::string* problem) {
  auto reject = [&](std::string why) -> std::unique_ptr<Llama2cTokenizer> {
    *problem = std::move(why);
    return nullptr;
  };
  if (bytes.size() < 4) return reject("file shorter than the 4-byte header");
  const int32_t max_len = load_le<int32_t>(bytes, 0);
  if (max_len <= 0 || max_len > kMaxTokenLength)
    return reject("max_token_length " + std::to_string(max_len) + " is outside 1.." +
                  std::to_string(kMaxTokenLength));

  std::vector<std::string> pieces;
  std::vector<float> scores;
  size_t pos = 4;
  while (pos < bytes.size()) {
    const size_t id = pieces.size();
    if (bytes.size() - pos < 8)
      return reject("truncated entry for token " + std::to_string(id) + " at byte " +
                    std::to_string(pos));
    const float score = load_le<float>(bytes, pos);
    const int32_t len = load_le<int32_t>(bytes, pos + 4);
    pos += 8;
    if (!std::isfinite(score))
      return reject("token " + std::to_string(id) + " has a non-finite score");
    if (len < 0 || len > max_len)
      return reject("token " + std::to_string(id) + " has length " + std::to_string(len) +
                    " (max_token_length is " + std::to_string(max_len) + ")");
    if (bytes.size() - pos < static_cast<size_t>(len))
      return reject("token " + std::to_string(id) + " runs past the end of the file");
    pieces.emplace_back(bytes.data() + pos, static_cast<size_t>(len));
    scores.push_back(score);
    pos += static_cast<size_t>(len);
  }
  if (pieces.size() < 3)
    return reject("only " + std::to_string(pieces.size()) + " tokens (need <unk>, <s>, </s>)");

  // llama2.c's convention: 0 = <unk>, 1 = <s>, 2 = </s>. tokenizer.py writes
  // BOS/EOS as "\n<s>\n" / "\n</s>\n"; keep SentencePiece's spelling in memory.
  std::vector<PieceKind> kinds(pieces.size(), PieceKind::normal);
  kinds[0] = PieceKind::unknown;
  kinds[1] = PieceKind::control;
  kinds[2] = PieceKind::control;
  if (pieces[1] == "\n<s>\n") pieces[1] = "<s>";
  if (pieces[2] == "\n</s>\n") pieces[2] = "</s>";
  for (size_t id = 3; id < pieces.size(); ++id) {
    if (byte_piece_value(pieces[id]) >= 0)
      kinds[id] = PieceKind::byte;
    else
      pieces[id] = spaces_to_symbol(pieces[id]);
  }

  std::unique_ptr<Llama2cTokenizer> tok(new Llama2cTokenizer());
  tok->path_ = path;
  tok->format_ = "llama2c";
  tok->set_vocabulary(std::move(pieces), std::move(scores), std::move(kinds), 0, 1, 2);
  tok->build_lookup();
  return tok;
}

void Llama2cTokenizer::build_lookup() {
  byte_ids_.fill(-1);
  merge_lookup_.reserve(static_cast<size_t>(vocab_size()) * 2);
  for (int32_t id = 0; id < vocab_size(); ++id) {
    if (kind(id) == PieceKind::byte) {
      byte_ids_[static_cast<size_t>(byte_piece_value(piece(id)))] = id;
    } else if (kind(id) == PieceKind::normal) {
      merge_lookup_.emplace(std::string_view(piece(id)), id);  // first id wins on duplicates
    }
  }
}

std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int32_t> out;
  if (bos) out.push_back(bos_id());
  const std::string norm = normalize_for_sentencepiece(text);
  const std::string_view view(norm);

  // Step 2: one symbol per character (norm is valid UTF-8 by construction).
  std::vector<Symbol> symbols;
  symbols.reserve(norm.size());
  for (size_t pos = 0; pos < norm.size();) {
    const auto len = static_cast<uint32_t>(utf8_char_length(view.substr(pos)));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(pos), len, index - 1, index + 1});
    pos += len;
  }
  if (!symbols.empty()) symbols.back().next = -1;

  // Step 3: greedy merges by score.
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> agenda;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    auto hit = merge_lookup_.find(view.substr(l.begin, l.size + r.size));
    if (hit == merge_lookup_.end()) return;
    agenda.push({score(hit->second), left, right, l.size + r.size});
  };
  for (size_t i = 1; i < symbols.size(); ++i)
    consider(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    Symbol& l = symbols[static_cast<size_t>(top.left)];
    Symbol& r = symbols[static_cast<size_t>(top.right)];
    // Symbols only grow or vanish, so an unchanged size sum means an unchanged pair.
    if (l.size == 0 || r.size == 0 || l.size + r.size != top.size) continue;
    l.size += r.size;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = top.left;
    r.size = 0;
    consider(l.prev, top.left);
    consider(top.left, l.next);
  }

  // Step 4: ids, with byte fallback for symbols outside the vocabulary.
  const bool byte_fallback = has_byte_fallback();
  bool prev_unk = false;
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    const std::string_view piece_text = view.substr(s.begin, s.size);
    auto hit = merge_lookup_.find(piece_text);
    if (hit != merge_lookup_.end()) {
      out.push_back(hit->second);
      prev_unk = false;
    } else if (byte_fallback) {
      for (char c : piece_text) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    } else {
      // SentencePiece folds a run of unknown symbols into one <unk>.
      if (!prev_unk) out.push_back(unk_id());
      prev_unk = true;
    }
  }
  if (eos) out.push_back(eos_id());
  return out;
}

std::string Llama2cTokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids);
  // Mirrors SentencePiece's decoder: byte pieces collect into a buffer that is
  // emitted as UTF-8 (one U+FFFD per malformed byte) when a non-byte piece or
  // the end arrives; control pieces vanish; the first piece that is not a
  // control piece loses its leading "▁" if it is a normal piece.
  std::string text;
  std::string pending_bytes;
  auto flush_bytes = [&]() {
    std::string_view b(pending_bytes);
    size_t pos = 0;
    while (pos < b.size()) {
      const int len = utf8_char_length(b.substr(pos));
      if (len == 0) {
        text.append(kReplacement);
        pos += 1;
      } else {
        text.append(b.substr(pos, static_cast<size_t>(len)));
        pos += static_cast<size_t>(len);
      }
    }
    pending_bytes.clear();
  };
  bool at_start = true;
  for (int32_t id : ids) {
    const PieceKind k = kind(id);
    if (k == PieceKind::byte) {
      pending_bytes.push_back(static_cast<char>(byte_piece_value(piece(id))));
      at_start = false;
      continue;
    }
    flush_bytes();
    if (k == PieceKind::control) continue;
    if (k == PieceKind::unknown) {
      text.append(" \xE2\x81\x87 ");
      at_start = false;
      continue;
    }
    std::string_view p(piece(id));
    if (at_start && p.substr(0, kSpaceSymbol.size()) == kSpaceSymbol)
      p.remove_prefix(kSpaceSymbol.size());
    at_start = false;
    while (!p.empty()) {
      if (p.substr(0, kSpaceSymbol.size()) == kSpaceSymbol) {
        text.push_back(' ');
        p.remove_prefix(kSpaceSymbol.size());
      } else {
        text.push_back(p.front());
        p.remove_prefix(1);
      }
    }
  }
  flush_bytes();
  return text;
}

}  // namespace kiln
