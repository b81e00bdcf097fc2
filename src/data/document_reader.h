// Text corpora -> documents. Shared by `kiln tokenizer train` and `kiln data prepare`.
//
// Plain text: documents are separated by blank (whitespace-only) lines, or,
// with line_per_doc, every non-blank line is a document.
// JSON: JSON Lines (one object per line) or one JSON array of objects (the
// layout of TinyStories' data*.json); each object's "text" string, or failing
// that its "story" string, is the document. Documents are trimmed of leading
// and trailing whitespace; empty ones are dropped.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln {

enum class TextFormat { automatic, text, jsonl };

// "auto" | "text" | "jsonl" (InputError naming `flag` otherwise).
TextFormat parse_text_format(const std::string& name, const std::string& flag = "--format");
const char* text_format_name(TextFormat format);

struct TextInput {
  std::string path;
  TextFormat format;  // never automatic
  uint64_t bytes;
};

// Expands files and directories into an ordered list of input files. Files are
// taken as given; directories are searched recursively in sorted order,
// skipping hidden entries, for *.json/*.jsonl (JSON) and *.txt/*.text/*.md
// (text) -- or every file when `format` is text. With `format` automatic a
// file's format follows its extension (.json/.jsonl -> JSON, else text).
// InputError for a missing path or when nothing is found.
std::vector<TextInput> expand_inputs(const std::vector<std::string>& paths, TextFormat format);

struct DocumentOptions {
  bool line_per_doc = false;
};

// Streams one file's documents into `sink`. `progress`, if set, is called now
// and then with the number of bytes of the file consumed so far. InputError
// (with the path, and the line or byte offset) for unreadable files or bad JSON.
void read_documents(const TextInput& file, const DocumentOptions& options,
                    const std::function<void(std::string&&)>& sink,
                    const std::function<void(uint64_t)>& progress = {});

// Trims ASCII whitespace (space, \t, \n, \r, \f, \v) from both ends.
std::string_view trim_whitespace(std::string_view text);

}  // namespace kiln
