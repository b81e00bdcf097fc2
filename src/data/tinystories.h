// `kiln data tinystories`: fetch (or take from disk), verify and unpack the
// TinyStories archives.
//
//   pretok -- TinyStories pretokenized with Llama 2's 32000-piece tokenizer by
//             llama2.c (the file the ANE work trains on): data00.bin ..
//             data49.bin, flat uint16, BOS before every story. Unpacked into
//             <dir>/tok32000/ with a Kiln manifest (data00 is the val split, as
//             in llama2.c).
//   raw    -- TinyStories_all_data.tar.gz: data00.json .. data49.json, JSON
//             arrays of {"story": ...}. Unpacked into <dir>/TinyStories_all_data/;
//             with a tokenizer, then run through `data prepare` into <dir>/tok<V>/.
//
// Downloads use curl; archives are read with tar (both run as child processes
// with argument vectors, never through a shell). Entries with absolute paths
// or ".." are refused. Output directories appear only when complete.
#pragma once
#include <cstdint>
#include <string>

namespace kiln {

struct TinyStoriesOptions {
  std::string dir = "data/tinystories";
  std::string archive;    // a .tar.gz on disk; empty: download
  std::string kind;       // "pretok" or "raw"; empty: pretok for downloads, else from the archive
  std::string url;        // overrides the default download URL
  std::string sha256;     // when set, the archive must match
  std::string tokenizer;  // raw: tokenize the stories into shards with this tokenizer
  double val_fraction = 0.01;
  int threads = 0;
  bool force = false;  // redo even when the output already exists
  bool progress = true;
};

struct TinyStoriesResult {
  std::string kind;
  std::string archive;
  std::string data_dir;    // where the shards (pretok) or the JSON files (raw) are
  std::string shards_dir;  // raw + tokenizer: the prepared shards; pretok: same as data_dir
  uint64_t files = 0;
  uint64_t tokens = 0;
  uint64_t documents = 0;
  bool already_present = false;
};

TinyStoriesResult fetch_tinystories(const TinyStoriesOptions& options);

extern const char* const kTinyStoriesPretokUrl;
extern const char* const kTinyStoriesRawUrl;

}  // namespace kiln
