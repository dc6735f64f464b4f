// Stand-in for <cuda_runtime.h> under the CPU emulator: the runtime API (cuda_runtime_api.h) and
// the 16-bit types.
#pragma once

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime_api.h"
