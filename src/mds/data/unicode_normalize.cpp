// unicode_normalize: the four UAX #15 forms through ICU's Normalizer2 on UTF-8, with an ASCII
// fast path and a check-before-copy for text that is already normalized.
#include "mds/data/unicode_normalize.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>

#include "mds/core/error.h"

namespace mds::data {
namespace {

bool is_ascii(std::string_view s) {
  const char* p = s.data();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {  // a word at a time: the high bit of any byte marks UTF-8
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) return false;
  }
  for (; i < s.size(); ++i)
    if (static_cast<unsigned char>(p[i]) >= 0x80) return false;
  return true;
}

// ICU's instances are process-wide singletons, immutable once made: looked up once here.
const icu::Normalizer2& normalizer(UnicodeForm form) {
  static const std::array<const icu::Normalizer2*, 4> all = [] {
    std::array<const icu::Normalizer2*, 4> a{};
    const char* names[] = {"NFC", "NFD", "NFKC", "NFKD"};
    for (int f = 0; f < 4; ++f) {
      UErrorCode err = U_ZERO_ERROR;
      a[f] = f == 0   ? icu::Normalizer2::getNFCInstance(err)
             : f == 1 ? icu::Normalizer2::getNFDInstance(err)
             : f == 2 ? icu::Normalizer2::getNFKCInstance(err)
                      : icu::Normalizer2::getNFKDInstance(err);
      MDS_CHECK(U_SUCCESS(err) && a[f],
                "ICU cannot load its {} normalization data ({}): reinstall libicu (bash "
                "scripts/setup.sh)",
                names[f], u_errorName(err));
    }
    return a;
  }();
  return *all[static_cast<int>(form)];
}

}  // namespace

std::optional<UnicodeForm> unicode_form(std::string_view name) {
  if (name == "NFC") return UnicodeForm::nfc;
  if (name == "NFD") return UnicodeForm::nfd;
  if (name == "NFKC") return UnicodeForm::nfkc;
  if (name == "NFKD") return UnicodeForm::nfkd;
  return std::nullopt;
}

void unicode_normalize(std::string& text, UnicodeForm form) {
  if (is_ascii(text)) return;
  MDS_CHECK(text.size() <= size_t(std::numeric_limits<int32_t>::max()),
            "a text of {} bytes is too long to normalize (ICU takes at most 2 GiB at once)",
            text.size());
  const icu::Normalizer2& n = normalizer(form);
  const icu::StringPiece in(text.data(), static_cast<int32_t>(text.size()));
  UErrorCode err = U_ZERO_ERROR;
  // Most non-ASCII text is already NFC: checking costs no allocation, rewriting costs a copy.
  if (n.isNormalizedUTF8(in, err) && U_SUCCESS(err)) return;
  err = U_ZERO_ERROR;
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  icu::StringByteSink<std::string> sink(&out);
  n.normalizeUTF8(0, in, sink, nullptr, err);
  MDS_ASSERT(U_SUCCESS(err), "ICU normalizeUTF8 failed: {}", u_errorName(err));
  text = std::move(out);
}

}  // namespace mds::data
