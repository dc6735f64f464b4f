#include "mds/dist/nccl_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <type_traits>

#include "mds/core/error.h"

namespace mds::dist {
namespace {

NcclLibrary load() {
  const char* env = std::getenv("MDS_NCCL_LIBRARY");
  const std::string path = env && *env ? env : "libnccl.so.2";
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  MDS_CHECK(lib,
            "cannot load NCCL ({}): {}; several GPU processes need it: install NCCL, add its lib "
            "folder to LD_LIBRARY_PATH or set MDS_NCCL_LIBRARY to libnccl.so.2",
            path, dlerror());
  auto get = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    MDS_CHECK(fn, "{} has no {}: NCCL 2.18 or newer is needed", path, name);
  };
  NcclLibrary n{};
  get(n.GetVersion, "ncclGetVersion");
  get(n.GetErrorString, "ncclGetErrorString");
  get(n.GetUniqueId, "ncclGetUniqueId");
  get(n.CommInitRank, "ncclCommInitRank");
  get(n.CommSplit, "ncclCommSplit");
  get(n.CommDestroy, "ncclCommDestroy");
  get(n.CommAbort, "ncclCommAbort");
  get(n.CommGetAsyncError, "ncclCommGetAsyncError");
  get(n.CommCount, "ncclCommCount");
  get(n.CommUserRank, "ncclCommUserRank");
  get(n.AllReduce, "ncclAllReduce");
  get(n.ReduceScatter, "ncclReduceScatter");
  get(n.AllGather, "ncclAllGather");
  get(n.Broadcast, "ncclBroadcast");
  get(n.Send, "ncclSend");
  get(n.Recv, "ncclRecv");
  get(n.GroupStart, "ncclGroupStart");
  get(n.GroupEnd, "ncclGroupEnd");
  return n;  // the handle stays open for the life of the process
}

}  // namespace

const NcclLibrary& nccl() {
  static const NcclLibrary library = load();
  return library;
}

}  // namespace mds::dist
