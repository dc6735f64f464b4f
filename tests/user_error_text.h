// The text of the UserError a callable throws, or "" when it throws none: for tests that check
// what a user is told.
#pragma once

#include <string>

#include "mds/core/error.h"

namespace mds::test {

template <typename F>
std::string user_error_of(F f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace mds::test
