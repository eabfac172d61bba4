#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/check.h"
#include "core/log.h"
#include "tokenizer/known_patterns.h"

namespace r1::tok {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::unique_ptr<KnownPattern> known;  // used instead of `code` when set
  ~Impl() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

Regex::~Regex() = default;

std::string TranslatePattern(const std::string& pattern) {
  std::string p = pattern;
  static const std::string kContractions = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  for (size_t at; (at = p.find(kContractions)) != std::string::npos;) {
    p.replace(at, kContractions.size(), "(?:'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))");
  }
  // \s and \S, inside or outside a character class.
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's') {
        out += in_class ? "\\s\\x{FEFF}" : "[\\s\\x{FEFF}]";
      } else if (n == 'S' && !in_class) {
        out += "[^\\s\\x{FEFF}]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

Result<std::unique_ptr<Regex>> Regex::Compile(const std::string& pattern, bool allow_known) {
  const std::string translated = TranslatePattern(pattern);
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return InvalidArgument(StrFormat("regex /%s/ does not compile at offset %zu: %s",
                                     pattern.c_str(), static_cast<size_t>(offset),
                                     reinterpret_cast<const char*>(buf)));
  }
  // JIT is an accelerator only: without it (unsupported CPU) the interpreter gives equal results.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Regex> re(new Regex());
  re->pattern_ = pattern;
  re->impl_ = std::make_unique<Impl>();
  re->impl_->code = code;
  if (allow_known) re->impl_->known = KnownPattern::For(pattern);
  return re;
}

Result<std::unique_ptr<Regex>> Regex::Literal(const std::string& literal) {
  std::string p = "\\Q";
  for (size_t at = 0;;) {  // \Q…\E cannot contain \E itself
    const size_t e = literal.find("\\E", at);
    if (e == std::string::npos) {
      p += literal.substr(at);
      break;
    }
    p += literal.substr(at, e - at) + "\\E\\\\E\\Q";
    at = e + 2;
  }
  p += "\\E";
  return Compile(p);
}

void Regex::FindAll(std::string_view text, std::vector<Span>* out) const {
  if (impl_->known != nullptr) return impl_->known->FindAll(text, out);
  out->clear();
  // Per-thread match data, JIT stack and limits, reused across calls. The limits are raised so a
  // megabyte-long word or white-space run cannot make a match fail.
  struct ThreadState {
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    pcre2_jit_stack* stack = pcre2_jit_stack_create(64 << 10, 64 << 20, nullptr);
    pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
    ThreadState() {
      pcre2_jit_stack_assign(ctx, nullptr, stack);
      pcre2_set_match_limit(ctx, UINT32_MAX);
      pcre2_set_depth_limit(ctx, UINT32_MAX);
      pcre2_set_heap_limit(ctx, UINT32_MAX);
    }
    ~ThreadState() {
      pcre2_match_context_free(ctx);
      pcre2_jit_stack_free(stack);
      pcre2_match_data_free(md);
    }
  };
  thread_local ThreadState ts;
  pcre2_match_data* md = ts.md;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc =
        pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, ts.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    R1_CHECK(rc >= 0) << "pcre2_match failed with " << rc << " on /" << pattern_ << "/";
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out->push_back({b, e});
      start = e;
    } else {
      // Empty match: step over one whole character.
      if (b >= text.size()) break;
      start = b + 1;
      while (start < text.size() && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
}

}  // namespace r1::tok
