// PCRE2 wrapper: compile once at load, match with a per-thread match block.
#include "tokenizer/hf_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace kiln::hf {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::string file, where;  // for the error when a match gives up
};

Regex::Regex(const std::string& pattern, const std::string& file, const std::string& where)
    : impl_(std::make_unique<Impl>()) {
  impl_->file = file;
  impl_->where = where;
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail_input(file, where + ": invalid regex at offset " + std::to_string(offset) + ": " +
                         reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation only: where it is unavailable the interpreter runs.
  (void)pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

namespace {
// One match block per thread, grown as needed: no allocation per call.
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(16, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}
}  // namespace

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc =
        pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) {
      if (rc == PCRE2_ERROR_NOMATCH) break;
      // The match or depth limit: a pattern that backtracks without end.
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail_input(impl_->file,
                 impl_->where + ": regex match failed: " + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      // Empty match: step over one whole UTF-8 character.
      size_t next = b + 1;
      while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
      start = next;
    }
  }
}

// A Replace normalizer or Split pre-tokenizer pattern: {"String": s} or {"Regex": r}.
std::unique_ptr<Regex> parse_pattern(const JsonAt& pattern, std::string& literal) {
  pattern.expect_object();
  if (pattern.has("String")) {
    literal = pattern["String"].str();
    return nullptr;
  }
  if (pattern.has("Regex")) {
    const JsonAt r = pattern["Regex"];
    return std::make_unique<Regex>(r.str(), r.file(), r.path());
  }
  pattern.fail("needs a \"String\" or a \"Regex\"", "", pattern.value().dump());
}

}  // namespace kiln::hf
