// The emulated cuBLASLt behind shim/cublasLt.h: D = alpha op(A) op(B) + beta C, column-major,
// with fp32 accumulation (the only compute type mds asks for), on the host.
//
// Checked as cuBLASLt would: the type combinations of its table that mds uses (A/B fp32 with
// C/D fp32; A/B bf16 or fp16 with C/D of the same type or fp32), layouts whose shapes agree
// with the operation, leading dimensions at least the rows, C and D alike, the workspace, and
// alpha/beta as fp32 host scalars. The product is OpenBLAS's sgemm on the operands widened to
// fp32 (exact for bf16 and fp16): fp32 accumulation, as cuBLASLt's CUBLAS_COMPUTE_32F, in
// another order than the tensor cores'. The emulator stands in for cuBLASLt here; it does not
// test it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <cblas.h>

#include "cublasLt.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

struct cublasLtContext {};
struct cublasLtMatmulDescOpaque {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct cublasLtMatrixLayoutOpaque {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque {
  size_t max_workspace = 0;
};

namespace {

bool known_type(cudaDataType_t t) {
  return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF;
}

float load(cudaDataType_t t, const void* p, size_t i) {
  switch (t) {
    case CUDA_R_32F:
      return static_cast<const float*>(p)[i];
    case CUDA_R_16BF:
      return static_cast<float>(static_cast<const mds::bf16*>(p)[i]);
    case CUDA_R_16F:
      return static_cast<float>(static_cast<const mds::fp16*>(p)[i]);
  }
  return 0.0f;
}

void store(cudaDataType_t t, void* p, size_t i, float x) {
  switch (t) {
    case CUDA_R_32F:
      static_cast<float*>(p)[i] = x;
      break;
    case CUDA_R_16BF:
      static_cast<mds::bf16*>(p)[i] = mds::bf16(x);
      break;
    case CUDA_R_16F:
      static_cast<mds::fp16*>(p)[i] = mds::fp16(x);
      break;
  }
}

// The shape checks of a GEMM: op(A) [m, k], op(B) [k, n], C = D [m, n].
cublasStatus_t check(const cublasLtMatmulDescOpaque& op, const cublasLtMatrixLayoutOpaque& a,
                     const cublasLtMatrixLayoutOpaque& b, const cublasLtMatrixLayoutOpaque& c,
                     const cublasLtMatrixLayoutOpaque& d) {
  if (op.compute != CUBLAS_COMPUTE_32F || op.scale != CUDA_R_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (a.type != b.type || c.type != d.type) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (a.type == CUDA_R_32F ? c.type != CUDA_R_32F : c.type != CUDA_R_32F && c.type != a.type)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool at = op.ta == CUBLAS_OP_T, bt = op.tb == CUBLAS_OP_T;
  const uint64_t m = at ? a.cols : a.rows, k = at ? a.rows : a.cols;
  const uint64_t kb = bt ? b.cols : b.rows, n = bt ? b.rows : b.cols;
  if (k != kb || c.rows != m || c.cols != n || d.rows != m || d.cols != n || c.ld != d.ld)
    return CUBLAS_STATUS_INVALID_VALUE;
  for (const auto* l : {&a, &b, &c})
    if (l->ld < static_cast<int64_t>(std::max<uint64_t>(l->rows, 1)))
      return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasLtGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasLtGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "an absent device architectural feature is required";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
  }
  return "unknown";
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  *desc = new cublasLtMatmulDescOpaque{compute, scale};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void* value, size_t bytes) {
  if (!desc || !value) return CUBLAS_STATUS_INVALID_VALUE;
  cublasOperation_t* target = attr == CUBLASLT_MATMUL_DESC_TRANSA   ? &desc->ta
                              : attr == CUBLASLT_MATMUL_DESC_TRANSB ? &desc->tb
                                                                    : nullptr;
  if (!target) return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated: mds sets no others
  if (bytes != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(target, value, bytes);
  if (*target != CUBLAS_OP_N && *target != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  if (!known_type(type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  *layout = new cublasLtMatrixLayoutOpaque{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = new cublasLtMatmulPreferenceOpaque();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* value, size_t bytes) {
  if (!pref || !value) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      if (bytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&pref->max_workspace, value, bytes);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
      return bytes == sizeof(uint32_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t* results,
                                              int* returned) {
  if (!handle || !desc || !a || !b || !c || !d || !pref || requested < 1)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (const cublasStatus_t s = check(*desc, *a, *b, *c, *d); s != CUBLAS_STATUS_SUCCESS) return s;
  results[0] = {};
  results[0].algo.data[0] = 1;  // the one algorithm: the loop below
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                              const void* a, cublasLtMatrixLayout_t al, const void* b,
                              cublasLtMatrixLayout_t bl, const void* beta, const void* c,
                              cublasLtMatrixLayout_t cl, void* d, cublasLtMatrixLayout_t dl,
                              const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t) {
  if (!handle || !desc || !al || !bl || !cl || !dl || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (const cublasStatus_t s = check(*desc, *al, *bl, *cl, *dl); s != CUBLAS_STATUS_SUCCESS)
    return s;
  if (algo && algo->data[0] != 1) return CUBLAS_STATUS_INVALID_VALUE;
  if (workspace_bytes && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
  if (cudaPeekAtLastError() == cudaErrorLaunchFailure) return CUBLAS_STATUS_EXECUTION_FAILED;
  const bool at = desc->ta == CUBLAS_OP_T, bt = desc->tb == CUBLAS_OP_T;
  const size_t m = cl->rows, n = cl->cols, k = at ? al->rows : al->cols;
  const float alpha_f = *static_cast<const float*>(alpha),
              beta_f = *static_cast<const float*>(beta);
  // op(A) [m, k] and op(B) [k, n] in fp32, column-major and contiguous.
  std::vector<float> a32(m * k), b32(k * n), d32(m * n);
  for (size_t p = 0; p < k; ++p)
    for (size_t i = 0; i < m; ++i)
      a32[p * m + i] = load(al->type, a, at ? i * al->ld + p : p * al->ld + i);
  for (size_t j = 0; j < n; ++j)
    for (size_t p = 0; p < k; ++p)
      b32[j * k + p] = load(bl->type, b, bt ? p * bl->ld + j : j * bl->ld + p);
  cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a32.data(), static_cast<int>(m), b32.data(),
              static_cast<int>(k), 0.0f, d32.data(), static_cast<int>(m));
  // C may alias D (it does in linear.cu): each element reads its C before writing its D.
  for (size_t j = 0; j < n; ++j)
    for (size_t i = 0; i < m; ++i) {
      float out = alpha_f * d32[j * m + i];
      if (beta_f != 0.0f) out += beta_f * load(cl->type, c, j * cl->ld + i);
      store(dl->type, d, j * dl->ld + i, out);
    }
  return CUBLAS_STATUS_SUCCESS;
}
