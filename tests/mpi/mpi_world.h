// The world communicator of the multi-rank test binary (set up once by main.cpp).
#pragma once

#include "mds/dist/communicator.h"

namespace mds::testing {
dist::Communicator& world();
}  // namespace mds::testing
