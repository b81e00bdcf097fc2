// `kiln data prepare`: text -> token shards + manifest.
//
// Documents stream from the inputs (document_reader.h) in a reader thread,
// are tokenized in parallel batches (BOS + tokens, no EOS, as llama2.c's
// pretokenizer does), and are written in input order -- so the output is the
// same for any thread count. Document g goes to the val split when
// floor((g+1)·f) > floor(g·f): an exact fraction f of the documents, spread
// evenly through the corpus. Shards hold whole documents and close once they
// reach `shard_tokens`.
//
// Everything is written into a hidden staging directory inside `out_dir` and
// moved into place only after every shard is complete; the manifest goes last.
// A failure leaves `out_dir` as it was.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/document_reader.h"
#include "io/dataset_manifest.h"

namespace kiln {

struct PrepareOptions {
  std::string tokenizer_path;
  std::vector<std::string> inputs;
  TextFormat format = TextFormat::automatic;
  bool line_per_doc = false;
  std::string out_dir;
  double val_fraction = 0.01;
  int threads = 0;                            // 0: all hardware threads
  uint64_t shard_tokens = uint64_t{1} << 26;  // 64 Mi tokens (128 MiB of uint16)
  bool progress = true;
};

struct PrepareResult {
  DatasetManifest manifest;
  uint64_t input_bytes = 0;
  double seconds = 0.0;
};

PrepareResult prepare_dataset(const PrepareOptions& options);

// The split rule above, exposed for tests: is document `index` a val document?
bool is_val_document(uint64_t index, double val_fraction);

}  // namespace kiln
