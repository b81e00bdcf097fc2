#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"

// Exported by libsentencepiece but not declared in its public headers.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}

namespace kiln {

void set_sentencepiece_logging(bool verbose) {
  // 0 = INFO, 1 = WARNING, 2 = ERROR.
  sentencepiece::logging::SetMinLogLevel(verbose ? 0 : 2);
}

SentencePieceTokenizer::SentencePieceTokenizer()
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_serialized(
    const std::string& path, const std::string& bytes) {
  set_sentencepiece_logging(false);
  std::unique_ptr<SentencePieceTokenizer> tok(new SentencePieceTokenizer());
  tok->path_ = path;
  tok->format_ = "sentencepiece";
  auto& sp = *tok->processor_;
  const auto status = sp.LoadFromSerializedProto(bytes);
  if (!status.ok()) fail_input(path, "not a valid SentencePiece model: " + status.ToString());
  const int n = sp.GetPieceSize();
  if (n < 1) fail_input(path, "SentencePiece model has no pieces");

  std::vector<std::string> pieces(static_cast<size_t>(n));
  std::vector<float> scores(static_cast<size_t>(n));
  std::vector<PieceKind> kinds(static_cast<size_t>(n));
  for (int id = 0; id < n; ++id) {
    pieces[id] = sp.IdToPiece(id);
    scores[id] = sp.GetScore(id);
    kinds[id] = sp.IsUnknown(id)   ? PieceKind::unknown
                : sp.IsControl(id) ? PieceKind::control
                : sp.IsByte(id)    ? PieceKind::byte
                : sp.IsUnused(id)  ? PieceKind::unused
                                   : PieceKind::normal;
  }
  tok->set_vocabulary(std::move(pieces), std::move(scores), std::move(kinds), sp.unk_id(),
                      sp.bos_id(), sp.eos_id());
  return tok;
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool bos,
                                                    bool eos) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) fail_runtime(path_, "SentencePiece encode failed: " + status.ToString());
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (bos) {
    if (bos_id() < 0) fail_input(path_, "tokenizer has no BOS piece");
    out.push_back(bos_id());
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (eos) {
    if (eos_id() < 0) fail_input(path_, "tokenizer has no EOS piece");
    out.push_back(eos_id());
  }
  return out;
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids);
  std::vector<int> as_int(ids.begin(), ids.end());
  std::string text;
  const auto status = processor_->Decode(as_int, &text);
  if (!status.ok()) fail_runtime(path_, "SentencePiece decode failed: " + status.ToString());
  return text;
}

}  // namespace kiln
