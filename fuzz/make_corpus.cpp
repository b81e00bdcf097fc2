// Writes the seed corpora of the fuzz targets from valid files made by Kiln's
// own writers (plus a hand-built llama2.c v2 file and an F16 safetensors file,
// which Kiln reads but does not write).
//
//   make_corpus <fuzz/corpus> <tests/data/kiln_prose.txt>  -> <dir>/<target>/<seed name>
//
// Every seed describes fuzz::tiny_config, so a whole checkpoint is a few KB.
// Run by scripts/fuzz-smoke.sh --regen-corpus; the output is committed.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/tokenizer_trainer.h"
#include "fuzz_common.h"
#include "io/checkpoint.h"
#include "io/dataset_manifest.h"
#include "io/file_util.h"
#include "io/llama2c_model.h"
#include "io/model_safetensors.h"
#include "io/safetensors.h"
#include "io/token_shards.h"
#include "model/param_layout.h"
#include "tokenizer/hf_byte_level.h"
#include "tokenizer/tokenizer.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

std::string g_root;

std::string slurp(const std::string& path) { return read_file(path, 1 << 20); }

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root + "/" + target);
  std::ofstream(g_root + "/" + target + "/" + name, std::ios::binary) << bytes;
}

template <typename T>
void append(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

struct Model {
  ModelConfig config;
  ParamLayout layout;
  std::vector<float> params, m, v;
  Model(bool tied, uint64_t seed) : config(fuzz::tiny_config(tied)), layout(config) {
    params.resize(size_t(layout.total()));
    init_params(config, layout, seed, params.data());
    Rng rng(seed, 7);
    for (size_t i = 0; i < params.size(); ++i) {
      m.push_back(0.01f * float(i % 13) - 0.05f);
      v.push_back(1e-4f * float(i % 7));
    }
  }
};

// llama2.c v2: v1's header with version 2 and group_size at byte 37; fp32 norms,
// then every matrix as int8 values followed by fp32 group scales.
std::string llama2c_v2(const Model& model, int32_t group_size) {
  const ModelConfig& c = model.config;
  std::string raw(256, '\0');
  const int32_t fields[9] = {0x616b3432,   2,         c.dim,        c.hidden_dim,
                             c.n_layers,   c.n_heads, c.n_kv_heads, c.vocab_size,
                             c.max_seq_len};
  std::memcpy(raw.data(), fields, sizeof(fields));
  raw[36] = c.tie_embeddings ? 1 : 0;
  std::memcpy(raw.data() + 37, &group_size, 4);
  auto floats = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) append(&raw, 1.0f + 0.01f * float(i));
  };
  auto q8 = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) append(&raw, int8_t((i * 37) % 255 - 127));
    for (int64_t g = 0; g < n / group_size; ++g) append(&raw, 0.001f * float(g + 1));
  };
  const int64_t C = c.dim, F = c.hidden_dim, V = c.vocab_size, L = c.n_layers;
  floats(L * C);  // rms_att
  floats(L * C);  // rms_ffn
  floats(C);      // rms_final
  q8(V * C);      // token embedding
  for (int64_t n : {int64_t(c.q_dim()) * C, int64_t(c.kv_dim()) * C, int64_t(c.kv_dim()) * C,
                    C * c.q_dim(), F * C, C * F, F * C})
    for (int64_t l = 0; l < L; ++l) q8(n);
  if (!c.tie_embeddings) q8(V * C);
  return raw;
}

// A safetensors file from a header and a buffer, as the format defines it.
std::string raw_safetensors(const nlohmann::json& header, const std::string& buffer) {
  const std::string text = header.dump();
  std::string raw;
  append(&raw, uint64_t(text.size()));
  return raw + text + buffer;
}

void safetensors_seeds(const std::string& tmp) {
  for (bool tied : {true, false}) {
    Model model(tied, 11);
    const std::string path = tmp + "/model.safetensors";
    save_model_safetensors(path, model.config, model.layout, model.params.data());
    put("safetensors", tied ? "model-tied" : "model-untied", slurp(path));
  }
  // Mixed dtypes and metadata: BF16 and F32 through Kiln's writer.
  std::vector<bf16> half(6);
  for (size_t i = 0; i < half.size(); ++i) half[i] = float_to_bf16(0.5f * float(i) - 1.0f);
  const float f[3] = {1.0f, -2.0f, 0.25f};
  const std::string path = tmp + "/mixed.safetensors";
  write_safetensors(path,
                    {{"a.bf16", DType::bf16, {2, 3}, half.data()},
                     {"b.f32", DType::f32, {3}, f},
                     {"c.empty", DType::f32, {0, 4}, nullptr}},
                    {{"format", "pt"}});
  put("safetensors", "mixed-bf16-f32", slurp(path));
  // F16 (read by Kiln, never written): 1.0, -2.0, a subnormal, +inf.
  std::string buf;
  for (uint16_t h : {uint16_t(0x3c00), uint16_t(0xc000), uint16_t(0x0001), uint16_t(0x7c00)})
    append(&buf, h);
  put("safetensors", "f16",
      raw_safetensors({{"h", {{"dtype", "F16"}, {"shape", {2, 2}}, {"data_offsets", {0, 8}}}}},
                      buf));
  if (SafetensorsReader(g_root + "/safetensors/f16").read_f32("h")[2] != 0x1p-24f)
    fail_runtime("f16", "F16 seed did not read back");
}

void llama2c_seeds(const std::string& tmp) {
  for (bool tied : {true, false}) {
    Model model(tied, 12);
    const std::string path = tmp + "/model.bin";
    save_llama2c_v0(path, model.config, model.layout, model.params.data());
    put("llama2c", std::string("v0-") + (tied ? "tied" : "untied"), slurp(path));
    save_llama2c_v1(path, model.config, model.layout, model.params.data());
    put("llama2c", std::string("v1-") + (tied ? "tied" : "untied"), slurp(path));
    const std::string name = std::string("v2-") + (tied ? "tied" : "untied");
    put("llama2c", name, llama2c_v2(model, 4));
    // Hand-built: check the reader takes it, so the seed reaches past the header checks.
    if (load_llama2c(g_root + "/llama2c/" + name).format_version != 2)
      fail_runtime(name, "v2 seed did not import as v2");
  }
}

void config_seeds() {
  const ModelConfig tiny = fuzz::tiny_config(false);
  put("config", "kiln-tiny.json", config_to_json(tiny).dump(2));
  put("config", "hf-tiny.json", config_to_hf_json(tiny).dump(2));
  ModelConfig preset;
  find_preset("stories15M", &preset);
  put("config", "kiln-stories15M.json", config_to_json(preset).dump());
  find_preset("qwen2.5-0.5b", &preset);
  put("config", "hf-qwen.json", config_to_hf_json(preset).dump());
  // Sparse: head_dim and n_kv_heads left to their defaults.
  put("config", "sparse.json",
      R"({"dim": 16, "n_layers": 2, "n_heads": 4, "hidden_dim": 40, "vocab_size": 32,)"
      R"( "max_seq_len": 8})");
}

// A checkpoint as fuzz_checkpoint's multi-part input, with "@FILES@" in place
// of the checksum map.
void checkpoint_seeds(const std::string& tmp) {
  for (bool with_moments : {true, false}) {
    Model model(!with_moments, 13);
    CheckpointContents c;
    c.config = &model.config;
    c.layout = &model.layout;
    c.params = model.params.data();
    if (with_moments) {
      c.m = model.m.data();
      c.v = model.v.data();
    }
    c.state = {{"step", 3},
               {"tokens", 96},
               {"rng", {{"state", 12345}, {"inc", 7}}},
               {"schedule", {{"lr", 3e-4}, {"warmup", 1}}}};
    const std::string dir = write_checkpoint(tmp + "/ck", checkpoint_name(3), c);
    nlohmann::json state = nlohmann::json::parse(slurp(dir + "/trainer_state.json"));
    state["files"] = "@FILES@";
    std::string input = state.dump();
    for (const char* file : {"config.json", "model.safetensors", "optimizer.safetensors"}) {
      if (!path_exists(dir + "/" + file)) break;
      input += fuzz::kPartSeparator;
      input += slurp(dir + "/" + file);
    }
    put("checkpoint", with_moments ? "with-moments" : "weights-only", input);
  }
}

// Token ids 0..n-1 scrambled below `vocab`.
std::vector<int32_t> some_tokens(int n, int vocab, int salt) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(int32_t((i * 48271 + salt) % vocab));
  return ids;
}

ShardWriter::Summary write_shard(const std::string& path, TokenDType dtype, ShardFormat format,
                                 const std::vector<int32_t>& ids) {
  ShardWriter w(path, dtype, format);
  w.append(ids);
  return w.finish();
}

void token_shard_seeds(const std::string& tmp) {
  const std::string path = tmp + "/shard.bin";
  write_shard(path, TokenDType::uint16, ShardFormat::flat, some_tokens(200, 300, 1));
  put("token_shards", "flat-u16", slurp(path));
  write_shard(path, TokenDType::uint16, ShardFormat::llmc, some_tokens(120, 300, 2));
  put("token_shards", "llmc-u16", slurp(path));
  write_shard(path, TokenDType::uint32, ShardFormat::flat, some_tokens(60, 70000, 3));
  put("token_shards", "flat-u32", slurp(path));
}

// A manifest directory as fuzz_manifest's multi-part input.
void manifest_seeds(const std::string& tmp) {
  struct Variant {
    const char* name;
    TokenDType dtype;
    ShardFormat format;
    int vocab;
  };
  for (const Variant& v : {Variant{"u16-flat", TokenDType::uint16, ShardFormat::flat, 300},
                           Variant{"u16-llmc", TokenDType::uint16, ShardFormat::llmc, 300},
                           Variant{"u32-flat", TokenDType::uint32, ShardFormat::flat, 70000}}) {
    const std::string dir = tmp + "/ds-" + v.name;
    fs::create_directories(dir);
    DatasetManifest m;
    m.vocab_size = v.vocab;
    m.dtype = v.dtype;
    m.tokenizer = {{"path", "kiln300.model"}, {"format", "sentencepiece"}, {"vocab_size", v.vocab}};
    const char* files[] = {"train_0000.bin", "val_0000.bin", "train_0001.bin"};
    const char* splits[] = {"train", "val", "train"};
    std::string parts[3];
    for (int i = 0; i < 3; ++i) {
      const auto sum = write_shard(dir + "/" + files[i], v.dtype, v.format,
                                   some_tokens(40 + 16 * i, v.vocab, i));
      m.shards.push_back(
          {files[i], splits[i], v.format, sum.tokens, uint64_t(2 + i), hex64(sum.xxh64)});
      parts[i] = slurp(dir + "/" + files[i]);
    }
    write_manifest(dir, m);
    TokenDataset::open(dir, {.split = "all", .verify_checksums = true});  // the seed is valid
    std::string input = slurp(dir + "/manifest.json");
    for (const std::string& part : parts) input += std::string(fuzz::kPartSeparator) + part;
    put("manifest", v.name, input);
  }
}

// A tiny SentencePiece BPE model trained on the test prose, and its
// tokenizer.bin export.
void tokenizer_seeds(const std::string& tmp, const std::string& prose) {
  TokenizerTrainOptions opt;
  opt.inputs = {prose};
  opt.vocab_size = 320;
  opt.out_path = tmp + "/kiln320.model";
  opt.threads = 1;
  opt.progress = false;
  train_tokenizer(opt);
  put("sentencepiece", "kiln320.model", slurp(opt.out_path));
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(opt.out_path);
  export_llama2c_tokenizer(*tok, tmp + "/kiln320.bin");
  put("tokenizer_bin", "kiln320.bin", slurp(tmp + "/kiln320.bin"));
}

// Small tokenizer.json files, one per family of components: byte-level BPE
// (Qwen/Llama-3 style), SentencePiece-style Metaspace with byte fallback and a
// template, and digit/string splits with string normalizers.
void tokenizer_json_seeds() {
  using nlohmann::json;
  const auto& alphabet = hf::ByteLevelAlphabet::get();
  json byte_vocab = json::object();
  for (int b = 0; b < 256; ++b) byte_vocab[std::string(alphabet.encode_byte(uint8_t(b)))] = b;
  const std::string G = "\xC4\xA0";  // "Ġ", the space byte
  byte_vocab[G + "t"] = 256;
  byte_vocab[G + "th"] = 257;
  byte_vocab[G + "the"] = 258;
  json byte_level = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 259}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}},
        {{"id", 260}, {"content", "<think>"}, {"special", false}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
                       R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"ignore_merges", true},
        {"vocab", byte_vocab},
        {"merges", {G + " t", G + "t h", G + "th e"}}}}};
  put("tokenizer_json", "byte_level.json", byte_level.dump(1));

  const std::string S = "\xE2\x96\x81";  // "▁"
  json sp_vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    sp_vocab[name] = 3 + b;
  }
  sp_vocab[S] = 259;
  sp_vocab["a"] = 260;
  sp_vocab[S + "a"] = 261;
  json metaspace = {
      {"added_tokens",
       {{{"id", 1}, {"content", "<s>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}, {"lstrip", true}}}},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "first"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", S}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", true},
        {"vocab", sp_vocab},
        {"merges", json::array({json::array({S, "a"})})}}}};
  put("tokenizer_json", "metaspace.json", metaspace.dump(1));

  json split = {
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "_"}},
          {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}},
          {{"type", "NFKC"}}}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", true}},
          {{"type", "Split"},
           {"pattern", {{"String", "_"}}},
           {"behavior", "MergedWithNext"},
           {"invert", false}}}}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "?"},
        {"continuing_subword_prefix", "##"},
        {"vocab", {{"?", 0}, {"_", 1}, {"a", 2}, {"##a", 3}, {"1", 4}, {"_a", 5}, {"aa", 6}}},
        {"merges", {"_ ##a", "a ##a"}}}}};
  put("tokenizer_json", "split_digits.json", split.dump(1));
}

// Hand-written chat templates (ChatML-style, Llama-style, one per construct);
// the real model templates are test-time downloads, not committed here.
void chat_template_seeds() {
  put("chat_template", "chatml.jinja",
      "{%- for message in messages %}\n"
      "    {{- '<|im_start|>' + message.role + '\\n' + (message.content or '') + '<|im_end|>\\n' }}\n"
      "{%- endfor %}\n"
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n");
  put("chat_template", "llama-style.jinja",
      "{{- bos_token }}{% set ns = namespace(sys='') %}\n"
      "{% for m in messages if m.role == 'system' %}{% set ns.sys = m.content | trim %}{% endfor %}\n"
      "{% for m in messages[1:] %}{{ '<|start_header_id|>' ~ m['role'] ~ '<|end_header_id|>\\n\\n' }}"
      "{{ m.content | default('', true) | trim }}{% if m.tool_calls is defined %}"
      "{{ m.tool_calls[0].function.arguments | tojson(indent=2) }}{% endif %}<|eot_id|>{% endfor %}\n");
  put("chat_template", "thinking.jinja",
      "{%- for message in messages[::-1] %}{%- set i = (messages|length - 1) - loop.index0 %}\n"
      "{%- if message.content is string and '</think>' in message.content %}"
      "{{ message.content.split('</think>')[-1].lstrip('\\n') }}{%- endif %}{%- endfor %}\n"
      "{%- if enable_thinking is defined and enable_thinking is false %}<think>\\n\\n</think>{% endif %}");
  put("chat_template", "macros.jinja",
      "{% macro render(x, sep=', ') %}{% if x is mapping %}{% for k, v in x | items %}"
      "{{ k }}={{ render(v) }}{{ sep if not loop.last }}{% endfor %}{% elif x is iterable and x is not "
      "string %}[{{ x | join(sep) }}]{% else %}{{ x }}{% endif %}{% endmacro %}"
      "{% for t in tools %}{{ render(t.function) }}{% else %}no tools{% endfor %}"
      "{# a comment #}{{ raise_exception('stop') if messages | length > 99 }}");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_corpus <corpus dir> <prose .txt for the tokenizer seeds>\n");
    return 2;
  }
  g_root = argv[1];
  const std::string tmp = fuzz::scratch_dir();
  safetensors_seeds(tmp);
  llama2c_seeds(tmp);
  config_seeds();
  checkpoint_seeds(tmp);
  token_shard_seeds(tmp);
  manifest_seeds(tmp);
  tokenizer_seeds(tmp, argv[2]);
  tokenizer_json_seeds();
  chat_template_seeds();
  std::printf("corpus written to %s\n", g_root.c_str());
  return 0;
}
