// NCCL loaded when first needed (dlopen of libnccl.so.2) instead of linked, so a CUDA build of
// mds starts on a machine without NCCL and only what needs it (several GPU processes, the NCCL
// tests) asks for it, with one clear error when it is missing. The entry points the
// communicator uses, with NCCL's own signatures. NCCL headers stay in dist/ and core/nccl_check.h.
#pragma once

#include <nccl.h>

namespace mds::dist {

struct NcclLibrary {
  decltype(&::ncclGetVersion) GetVersion;
  decltype(&::ncclGetErrorString) GetErrorString;
  decltype(&::ncclGetUniqueId) GetUniqueId;
  decltype(&::ncclCommInitRank) CommInitRank;
  decltype(&::ncclCommSplit) CommSplit;
  decltype(&::ncclCommDestroy) CommDestroy;
  decltype(&::ncclCommAbort) CommAbort;
  decltype(&::ncclCommGetAsyncError) CommGetAsyncError;
  decltype(&::ncclCommCount) CommCount;
  decltype(&::ncclCommUserRank) CommUserRank;
  decltype(&::ncclAllReduce) AllReduce;
  decltype(&::ncclReduceScatter) ReduceScatter;
  decltype(&::ncclAllGather) AllGather;
  decltype(&::ncclBroadcast) Broadcast;
  decltype(&::ncclSend) Send;
  decltype(&::ncclRecv) Recv;
  decltype(&::ncclGroupStart) GroupStart;
  decltype(&::ncclGroupEnd) GroupEnd;
};

// The library, loaded on the first call ($MDS_NCCL_LIBRARY, else libnccl.so.2 from the loader's
// path); a UserError naming what is missing when it cannot be loaded.
const NcclLibrary& nccl();

}  // namespace mds::dist
