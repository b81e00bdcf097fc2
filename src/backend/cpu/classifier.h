// Row chunking of the CPU backend's fused classifier + cross-entropy
// (classifier.cpp). Only a chunk of rows' logits exists at a time.
#pragma once
#include <cstdint>

namespace kiln {

// Rows per chunk for vocabulary size V: the most rows whose fp32 logits fit in
// kClassifierChunkBytes, rounded down to a multiple of 16 (at least 1), unless an
// override is set. The override starts from env KILN_CE_CHUNK (rows, for tests
// and experiments) and can be changed with set_classifier_chunk_rows().
constexpr int64_t kClassifierChunkBytes = int64_t(32) << 20;
int64_t classifier_chunk_rows(int64_t V);
// rows > 0 forces that many rows per chunk; 0 goes back to the automatic size.
void set_classifier_chunk_rows(int64_t rows);

}  // namespace kiln
