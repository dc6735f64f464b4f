// TEMPORARY placeholder, replaced within this session.
#include "mds/core/error.h"
#include "mds/tools/subcommands.h"
namespace mds::tools {
int train_main(int, char**) { MDS_FAIL("mds train: not built yet"); }
}  // namespace mds::tools
