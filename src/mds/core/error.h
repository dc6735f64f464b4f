// Errors: user mistakes become one line and exit code 2; broken invariants carry file:line.
//
//   MDS_CHECK(heads % kv == 0, "heads ({}) must be divisible by kv heads ({})", heads, kv);
//   MDS_ASSERT(n == m, "shape mismatch {} vs {}", n, m);   // internal: a bug, not the user's
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mds {

// Replaces each "{}" in fmt with the next argument, streamed with operator<<.
template <typename... Args>
std::string strfmt(std::string_view fmt, const Args&... args) {
  std::ostringstream out;
  size_t pos = 0;
  [[maybe_unused]] auto one = [&](const auto& arg) {
    size_t open = fmt.find("{}", pos);
    if (open == std::string_view::npos) return;
    out << fmt.substr(pos, open - pos) << arg;
    pos = open + 2;
  };
  (one(args), ...);
  out << fmt.substr(pos);
  return out.str();
}

// Something the user can fix (a flag, a file, a layout). main() prints it alone and exits 2.
struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A broken internal invariant: a bug in mds. main() prints it with its location and exits 1.
struct InternalError : std::logic_error {
  using std::logic_error::logic_error;
};

}  // namespace mds

#define MDS_CHECK(cond, ...)                                         \
  do {                                                               \
    if (!(cond)) throw ::mds::UserError(::mds::strfmt(__VA_ARGS__)); \
  } while (0)

#define MDS_FAIL(...) throw ::mds::UserError(::mds::strfmt(__VA_ARGS__))

#define MDS_ASSERT(cond, ...)                                                                   \
  do {                                                                                          \
    if (!(cond))                                                                                \
      throw ::mds::InternalError(::mds::strfmt("{}:{}: internal error: ", __FILE__, __LINE__) + \
                                 ::mds::strfmt(__VA_ARGS__));                                   \
  } while (0)
