// kiln tokenizer train | export | encode | decode | info | chat
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "io/document_reader.h"
#include "io/progress_bar.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_trainer.h"

namespace kiln::cli {

// cmd_tokenizer_chat.cpp: `kiln tokenizer chat`.
void add_tokenizer_chat(CLI::App& app, const std::shared_ptr<std::function<int()>>& chosen);

namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string token;
  std::istringstream in(text);
  // Space- or comma-separated integers, e.g. "1 450 4996" or "[1, 450, 4996]".
  std::string cleaned = text;
  for (char& c : cleaned)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream words(cleaned);
  while (words >> token) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != token.size() || v < INT32_MIN || v > INT32_MAX)
      fail_input("--ids", "not a token id", "an integer", "'" + token + "'");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

std::function<int()> setup(CLI::App& app) {
  app.require_subcommand(1);
  auto chosen = std::make_shared<std::function<int()>>();

  // --- train
  {
    auto opt = std::make_shared<TokenizerTrainOptions>();
    auto format = std::make_shared<std::string>("auto");
    auto quiet = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand(
        "train",
        "Train a SentencePiece BPE tokenizer (Llama settings: byte fallback, split digits, "
        "identity normalisation, unk=0 bos=1 eos=2)");
    sub->add_option("--input", opt->inputs, "Text/JSON files or directories")->required();
    sub->add_option("--vocab-size", opt->vocab_size, "Vocabulary size (default 4096)");
    sub->add_option("--out", opt->out_path, "Output .model path")->required();
    sub->add_option("--format", *format, "Input format: auto, text or jsonl (default auto)");
    sub->add_option("--threads", opt->threads, "Training threads (default: all)");
    sub->add_option("--max-sentences", opt->max_sentences,
                    "Lines sampled for training at most (default 5000000)");
    sub->add_option(
        "--character-coverage", opt->character_coverage,
        "Share of characters kept as pieces; the rest use byte fallback (default 0.99995)");
    sub->add_flag("--quiet", *quiet, "No progress line");
    sub->add_flag("--verbose", opt->verbose, "Show SentencePiece's own log");
    sub->callback([=] {
      *chosen = [=]() {
        opt->format = parse_text_format(*format);
        opt->progress = !*quiet;
        const TokenizerTrainResult r = train_tokenizer(*opt);
        std::printf("trained %s: %d pieces (alphabet %d characters) from %s lines, %s, in %.1f s\n",
                    opt->out_path.c_str(), r.vocab_size, r.alphabet_size,
                    human_count(static_cast<double>(r.sentences)).c_str(),
                    human_bytes(static_cast<double>(r.input_bytes)).c_str(), r.seconds);
        return 0;
      };
    });
  }

  // --- export
  {
    auto tokenizer = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    CLI::App* sub = app.add_subcommand("export", "Write llama2.c's tokenizer.bin for a tokenizer");
    sub->add_option("--tokenizer", *tokenizer, "SentencePiece .model (or tokenizer.bin)")
        ->required();
    sub->add_option("--out", *out, "Output tokenizer.bin path")->required();
    sub->callback([=] {
      *chosen = [=]() {
        const auto tok = load_tokenizer(*tokenizer);
        export_llama2c_tokenizer(*tok, *out);
        std::printf("wrote %s: %d tokens\n", out->c_str(), tok->vocab_size());
        return 0;
      };
    });
  }

  // --- encode
  {
    auto tokenizer = std::make_shared<std::string>();
    auto text = std::make_shared<std::string>();
    auto file = std::make_shared<std::string>();
    auto bos = std::make_shared<bool>(false);
    auto eos = std::make_shared<bool>(false);
    auto pieces = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand("encode", "Print the token ids of a text, space-separated");
    sub->add_option("--tokenizer", *tokenizer, ".model or tokenizer.bin")->required();
    auto* text_opt = sub->add_option("--text", *text, "Text to encode");
    auto* file_opt = sub->add_option("--file", *file, "Encode this file's whole content instead");
    text_opt->excludes(file_opt);
    sub->add_flag("--bos", *bos, "Prepend BOS");
    sub->add_flag("--eos", *eos, "Append EOS");
    sub->add_flag("--pieces", *pieces, "Print pieces instead of ids");
    sub->callback([=] {
      *chosen = [=]() {
        const auto tok = load_tokenizer(*tokenizer);
        std::string input = *text;
        if (!file->empty()) {
          std::FILE* f = std::fopen(file->c_str(), "rb");
          if (!f) fail_input(*file, "cannot open file");
          char buf[1 << 16];
          size_t n;
          input.clear();
          while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) input.append(buf, n);
          std::fclose(f);
        }
        const std::vector<int32_t> ids = tok->encode(input, *bos, *eos);
        std::string line;
        for (size_t i = 0; i < ids.size(); ++i) {
          if (i) line.push_back(' ');
          line += *pieces ? tok->piece(ids[i]) : std::to_string(ids[i]);
        }
        std::printf("%s\n", line.c_str());
        return 0;
      };
    });
  }

  // --- decode
  {
    auto tokenizer = std::make_shared<std::string>();
    auto ids = std::make_shared<std::string>();
    CLI::App* sub = app.add_subcommand("decode", "Print the text of token ids");
    sub->add_option("--tokenizer", *tokenizer, ".model or tokenizer.bin")->required();
    sub->add_option("--ids", *ids, "Token ids, e.g. \"1 450 4996\"")->required();
    sub->callback([=] {
      *chosen = [=]() {
        const auto tok = load_tokenizer(*tokenizer);
        const std::vector<int32_t> list = parse_ids(*ids);
        const std::string text = tok->decode(list);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fputc('\n', stdout);
        return 0;
      };
    });
  }

  // --- info
  {
    auto tokenizer = std::make_shared<std::string>();
    CLI::App* sub = app.add_subcommand("info", "Describe a tokenizer file");
    sub->add_option("--tokenizer", *tokenizer, ".model or tokenizer.bin")->required();
    sub->callback([=] {
      *chosen = [=]() {
        const auto tok = load_tokenizer(*tokenizer);
        int bytes = 0, controls = 0;
        for (int32_t id = 0; id < tok->vocab_size(); ++id) {
          bytes += tok->kind(id) == PieceKind::byte;
          controls += tok->kind(id) == PieceKind::control;
        }
        std::printf("path:          %s\n", tok->path().c_str());
        std::printf("format:        %s\n", tok->format().c_str());
        std::printf("vocab_size:    %d\n", tok->vocab_size());
        std::printf("unk/bos/eos:   %d / %d / %d\n", tok->unk_id(), tok->bos_id(), tok->eos_id());
        std::printf("byte pieces:   %d%s\n", bytes,
                    tok->has_byte_fallback() ? " (byte fallback)" : "");
        std::printf("control:       %d\n", controls);
        std::printf("xxh64:         %s\n", tok->checksum_hex().c_str());
        return 0;
      };
    });
  }

  add_tokenizer_chat(app, chosen);
  return [chosen]() { return (*chosen)(); };
}

RegisterCommand reg(
    {"tokenizer", "Train, export and run tokenizers (SentencePiece .model, llama2.c tokenizer.bin)",
     setup});

}  // namespace
}  // namespace kiln::cli
