// Unicode normalization forms (UAX #15) of UTF-8 text, by ICU's Normalizer2 (Debian's
// libicu-dev): what the NFC / NFD / NFKC / NFKD normalizers of a Hugging Face tokenizer.json do.
// Hugging Face's JavaScript implementation calls String.prototype.normalize, which is ICU in
// node; the Rust crate uses unicode-normalization. All agree on every character that the
// installed ICU's Unicode version knows (Debian 12: ICU 72, Unicode 15); characters newer than
// that pass through unchanged.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mds::data {

enum class UnicodeForm { nfc, nfd, nfkc, nfkd };

// "NFC", "NFD", "NFKC" or "NFKD" (a tokenizer.json normalizer's type); nullopt for anything else.
std::optional<UnicodeForm> unicode_form(std::string_view name);

// Rewrites text (UTF-8) in the given form. ASCII text is left untouched without calling ICU
// (it is invariant under all four forms), so the common case costs one scan. Ill-formed UTF-8
// passes through as ICU treats it (callers here repair it first). Safe from many threads.
void unicode_normalize(std::string& text, UnicodeForm form);

}  // namespace mds::data
