// The kernels on 16-bit storage on the CPU, for H = mds::bf16 (--bf16) and mds::fp16 (--fp16):
// the numerical truth the CUDA kernels of either type (ops/cuda/ops_cuda.h) are held to, and
// what the CPU backend runs for a mixed-precision model. Same names and arguments as the fp32
// kernels of ops.h and the CUDA overloads, on host memory, templates on H.
//
// Each kernel converts its 16-bit inputs to fp32 scratch (exact), runs the fp32 CPU kernel of
// ops.h on them, and rounds each 16-bit output once, to nearest even, from that fp32 result; fp32
// outputs (rstd, lse, losses, statistics, dw, dtable) are the fp32 kernel's own. "+=" into a
// 16-bit output converts the prior contents, lets the fp32 kernel add, and rounds the sum once.
// So for H-rounded inputs every output is bit for bit the fp32 kernel's result rounded to H:
// the precision contract of the CUDA kernels, with the CPU's own fp32 arithmetic. In fp16 an
// output beyond +-65504 becomes inf (core/fp16.h), as on the GPU: the loss scaler's signal.
// Slow by design (a full fp32 copy of each operand per call): a reference, not a fast path.
// Buffers may alias exactly where the fp32 kernel or ops_cuda.h says they may.
//
//   half_linear.h         linear_forward / backward (dw fp32 +=, main_grad)
//   half_rmsnorm.h        rmsnorm_{,residual_}forward / backward (rstd, dw fp32)
//   half_attention.h      attention_forward / backward (lse fp32)
//   half_cross_entropy.h  cross_entropy_* (losses and statistics fp32, dlogits H)
//   half_elementwise.h    rope, swiglu, embedding (dtable fp32), add_inplace, to_half, to_fp32,
//                         adamw_step on the fp32 master writing the H weights
#pragma once

#include "mds/ops/cpu/half_attention.h"
#include "mds/ops/cpu/half_cross_entropy.h"
#include "mds/ops/cpu/half_elementwise.h"
#include "mds/ops/cpu/half_linear.h"
#include "mds/ops/cpu/half_rmsnorm.h"
