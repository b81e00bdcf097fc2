// kiln tokenizer train | export | encode | decode | info | chat
#include <time.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "core/progress_bar.h"
#include "data/document_reader.h"
#include "data/tokenizer_trainer.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace kiln::cli {

// cmd_tokenizer_chat.cpp: `kiln tokenizer chat`.
void add_tokenizer_chat(CLI::App& app, const std::shared_ptr<std::function<int()>>& chosen);

namespace {

constexpr const char* kTokenizerHelp =
    ".model, tokenizer.bin, tokenizer.json, or a model directory holding one";

std::string read_whole_text(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail_input(path, "cannot open file");
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

struct EncodeBench {
  size_t tokens = 0;
  double first_mb_per_s = 0, mb_per_s = 0, cpu_mb_per_s = 0;
};

// This thread's CPU seconds: on a shared machine the wall clock also counts
// the time other processes had the core.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The first pass meets an empty word cache; the repeated ones run for `seconds`.
EncodeBench bench_encode(const Tokenizer& tok, const std::string& text, double seconds) {
  using clock = std::chrono::steady_clock;
  const double mb = static_cast<double>(text.size()) / 1e6;
  EncodeBench r;
  auto t0 = clock::now();
  r.tokens = tok.encode(text, false, false).size();
  r.first_mb_per_s = mb / std::chrono::duration<double>(clock::now() - t0).count();
  int rounds = 0;
  double elapsed = 0;
  t0 = clock::now();
  const double cpu0 = thread_cpu_seconds();
  do {
    r.tokens = tok.encode(text, false, false).size();
    ++rounds;
    elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  } while (elapsed < seconds);
  r.mb_per_s = mb * rounds / elapsed;
  r.cpu_mb_per_s = mb * rounds / (thread_cpu_seconds() - cpu0);
  return r;
}

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
    auto parse_special = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand("encode", "Print the token ids of a text, space-separated");
    sub->add_option("--tokenizer", *tokenizer, kTokenizerHelp)->required();
    auto* text_opt = sub->add_option("--text", *text, "Text to encode");
    auto* file_opt = sub->add_option("--file", *file, "Encode this file's whole content instead");
    text_opt->excludes(file_opt);
    sub->add_flag("--bos", *bos, "Prepend BOS");
    sub->add_flag("--eos", *eos, "Append EOS");
    sub->add_flag("--pieces", *pieces, "Print pieces instead of ids");
    sub->add_flag("--parse-special", *parse_special,
                  "Special tokens written in the text (<|im_start|>) become their ids "
                  "(tokenizer.json; default: encoded as plain text)");
    sub->callback([=] {
      *chosen = [=]() {
        const auto tok = load_tokenizer(*tokenizer);
        const std::string input = file->empty() ? *text : read_whole_text(*file);
        EncodeOptions options;
        options.bos = *bos;
        options.eos = *eos;
        options.parse_special = *parse_special;
        const std::vector<int32_t> ids = tok->encode_with(input, options);
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
    sub->add_option("--tokenizer", *tokenizer, kTokenizerHelp)->required();
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

  // --- bench
  {
    auto tokenizer = std::make_shared<std::string>();
    auto file = std::make_shared<std::string>();
    auto seconds = std::make_shared<double>(3.0);
    CLI::App* sub = app.add_subcommand(
        "bench", "Encoding speed on one thread: the first pass over a file, then repeated passes");
    sub->add_option("--tokenizer", *tokenizer, kTokenizerHelp)->required();
    sub->add_option("--file", *file, "Text to encode (whole)")->required();
    sub->add_option("--seconds", *seconds, "Time for the repeated passes (default 3)");
    sub->callback([=] {
      *chosen = [=]() {
        const auto tok = load_tokenizer(*tokenizer);
        const std::string text = read_whole_text(*file);
        const EncodeBench r = bench_encode(*tok, text, *seconds);
        std::printf(
            "{\"bytes\": %zu, \"tokens\": %zu, \"first_mb_per_s\": %.3f, \"mb_per_s\": %.3f, "
            "\"cpu_mb_per_s\": %.3f}\n",
            text.size(), r.tokens, r.first_mb_per_s, r.mb_per_s, r.cpu_mb_per_s);
        return 0;
      };
    });
  }

  // --- info
  {
    auto tokenizer = std::make_shared<std::string>();
    CLI::App* sub = app.add_subcommand("info", "Describe a tokenizer file");
    sub->add_option("--tokenizer", *tokenizer, kTokenizerHelp)->required();
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
        if (const auto* hf = dynamic_cast<const HfTokenizer*>(tok.get())) {
          std::printf("added tokens:  %d\n", hf->added_token_count());
          std::printf("pre-tokenizer: %s\n", hf->pre_tokenizer_chain().c_str());
        }
        return 0;
      };
    });
  }

  add_tokenizer_chat(app, chosen);
  return [chosen]() { return (*chosen)(); };
}

RegisterCommand reg(
    {"tokenizer",
     "Train, export and run tokenizers (SentencePiece .model, llama2.c tokenizer.bin, "
     "Hugging Face tokenizer.json)",
     setup});

}  // namespace
}  // namespace kiln::cli
