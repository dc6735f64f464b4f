// Linear layers on the GPU through cuBLASLt, always with fp32 accumulation (CUBLAS_COMPUTE_32F,
// fp32 alpha/beta):
//   fp32: A, B, C/D fp32, no TF32, so results match the CPU's OpenBLAS to fp32 rounding of the
//         k-term sums;
//   bf16, fp16: A, B 16-bit (CUDA_R_16BF, CUDA_R_16F) on the tensor cores; D of the same type
//         for y and dx, fp32 for dw, which accumulates into Megatron's fp32 main_grad directly
//         (beta = 1 on an fp32 C: the gradient_accumulation_fusion of Megatron's wgrad GEMM, no
//         16-bit dw and no extra add).
// The four 16-bit combinations (A/B bf16 or fp16 with C/D of the same type or fp32, compute 32F,
// scale 32F) are rows of cuBLASLt's table of supported types for cublasLtMatmul. An fp16 D is
// rounded from the fp32 result, overflowing to inf beyond 65504 (what the loss scaler detects).
// No epilogue: Llama's linears have no bias, and the activation (SwiGLU) needs both halves of
// the output.
//
// mds is row-major, cuBLAS column-major: a row-major [r, c] matrix is a column-major [c, r] one,
// so each product is computed transposed:
//   y  = x @ w^T      ->  y'  [n, m] = (w')^T [n, k] x'  [k, m]      (T, N)
//   dx = dy @ w       ->  dx' [k, m] =  w'    [k, n] dy' [n, m]      (N, N)
//   dw += dy^T @ x    ->  dw' [k, n] =  x'    [k, m] (dy')^T [m, n]  (N, T)
// The cuBLASLt handle, a 32 MiB workspace and each shape's descriptors and algorithm (a Plan) are
// process-wide, created on first use. Calls on different streams at the same time would share
// the workspace: one stream for GEMMs for now.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

struct Lt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// Never destroyed (like the allocator): the CUDA runtime may be gone at static destruction.
Lt& lt() {
  static Lt* state = [] {
    auto* s = new Lt();
    MDS_CUBLAS_CHECK(cublasLtCreate(&s->handle));
    s->workspace = CachingAllocator::instance().allocate(kWorkspaceBytes);
    return s;
  }();
  return *state;
}

// The cuBLASLt descriptors and the heuristic's algorithm of one GEMM shape, built on its first
// call and kept: a training step repeats the same few dozen shapes, and building descriptors
// and asking the heuristic costs tens of microseconds of host time per call.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Everything the descriptors and the algorithm depend on; the pointers only through their
// alignments.
using PlanKey = std::array<int64_t, 13>;

// The largest power of two (at most 256, at least the element size) that divides the address.
uint32_t alignment(const void* p, uint32_t element_bytes) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > element_bytes && addr % a != 0) a >>= 1;
  return a;
}

uint32_t type_bytes(cudaDataType_t t) {
  return t == CUDA_R_16BF || t == CUDA_R_16F ? 2 : 4;
}

const char* type_name(cudaDataType_t t) {
  return t == CUDA_R_16BF ? "bf16" : t == CUDA_R_16F ? "fp16" : "fp32";
}

std::unique_ptr<Plan> make_plan(const PlanKey& key) {
  const auto ta = static_cast<cublasOperation_t>(key[0]),
             tb = static_cast<cublasOperation_t>(key[1]);
  const int64_t m = key[2], n = key[3], k = key[4];
  const auto ab = static_cast<cudaDataType_t>(key[5]), cd = static_cast<cudaDataType_t>(key[6]);
  const int64_t lda = key[7], ldb = key[8], ldc = key[9];
  const auto align_a = static_cast<uint32_t>(key[10]), align_b = static_cast<uint32_t>(key[11]),
             align_c = static_cast<uint32_t>(key[12]);
  auto plan = std::make_unique<Plan>();
  MDS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  MDS_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  MDS_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  const bool a_t = ta == CUBLAS_OP_T, b_t = tb == CUBLAS_OP_T;
  MDS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, ab, a_t ? k : m, a_t ? m : k, lda));
  MDS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, ab, b_t ? n : k, b_t ? k : n, ldb));
  MDS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, cd, m, n, ldc));
  cublasLtMatmulPreference_t pref = nullptr;
  MDS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const auto set = [&](cublasLtMatmulPreferenceAttributes_t attr, const auto& value) {
    const cublasStatus_t status =
        cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof value);
    if (status != CUBLAS_STATUS_SUCCESS) cublasLtMatmulPreferenceDestroy(pref);
    MDS_CUBLAS_CHECK(status);
  };
  set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kWorkspaceBytes);
  // The heuristic assumes 256-byte aligned pointers unless told otherwise; views into the flat
  // parameter buffer may be less aligned, so state each pointer's real alignment.
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c);
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      lt().handle, plan->op, plan->a, plan->b, plan->c, plan->c, pref, 1, &heuristic, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  // "Nothing fits" is CUBLAS_STATUS_NOT_SUPPORTED (or no result): say which GEMM.
  MDS_ASSERT(
      status != CUBLAS_STATUS_NOT_SUPPORTED && (status != CUBLAS_STATUS_SUCCESS || found > 0),
      "cuBLASLt has no algorithm for a {}x{}x{} GEMM ({} A/B, {} C/D, alignments {}/{}/{} "
      "bytes)",
      m, n, k, type_name(ab), type_name(cd), align_a, align_b, align_c);
  MDS_CUBLAS_CHECK(status);
  plan->algo = heuristic.algo;
  return plan;
}

// The plan of a shape, made once. Plans live as long as the process (the handle does too).
const Plan& plan_for(const PlanKey& key) {
  static std::mutex mutex;
  static auto* plans = new std::map<PlanKey, std::unique_ptr<Plan>>();
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = plans->find(key);
  if (it == plans->end()) it = plans->emplace(key, make_plan(key)).first;
  return *it->second;
}

// Column-major C[m, n] = op(A) op(B) + beta C, with op(A) [m, k] and op(B) [k, n]; lda/ldb/ldc
// are the leading dimensions of the matrices as stored. A and B are of type ab, C (= D) of type
// cd; the accumulation is fp32 for every combination.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
          cudaDataType_t ab, const void* a, int64_t lda, const void* b, int64_t ldb,
          cudaDataType_t cd, void* c, int64_t ldc, float beta, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: C = beta C (as the CPU's kernels do)
    MDS_ASSERT(ldc == m, "GEMM with k = 0 on a strided C");
    if (beta == 0.0f)
      MDS_CUDA_CHECK(cudaMemsetAsync(c, 0, size_t(m) * size_t(n) * type_bytes(cd), stream));
    return;
  }
  const PlanKey key{ta,
                    tb,
                    m,
                    n,
                    k,
                    ab,
                    cd,
                    lda,
                    ldb,
                    ldc,
                    alignment(a, type_bytes(ab)),
                    alignment(b, type_bytes(ab)),
                    alignment(c, type_bytes(cd))};
  const Plan& plan = plan_for(key);
  const float alpha = 1.0f;
  MDS_CUBLAS_CHECK(cublasLtMatmul(lt().handle, plan.op, &alpha, a, plan.a, b, plan.b, &beta, c,
                                  plan.c, c, plan.c, &plan.algo, lt().workspace, kWorkspaceBytes,
                                  stream));
}

// The three products of the header comment; ab is the storage type of x, w, y, dy and dx.
void forward(cudaDataType_t ab, void* y, const void* x, const void* w, int64_t m, int64_t k,
             int64_t n, cudaStream_t stream) {
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, ab, w, k, x, k, ab, y, n, 0.0f, stream);
}

// dw is fp32 for every storage type.
void backward(cudaDataType_t ab, void* dx, float* dw, const void* dy, const void* x, const void* w,
              int64_t m, int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream) {
  if (dx)
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, k, m, n, ab, w, k, dy, n, ab, dx, k, accumulate_dx ? 1.0f : 0.0f,
         stream);
  if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, k, n, m, ab, x, k, dy, n, CUDA_R_32F, dw, k, 1.0f, stream);
}

}  // namespace

void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream) {
  forward(CUDA_R_32F, y, x, w, m, k, n, stream);
}

void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                     int64_t m, int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream) {
  backward(CUDA_R_32F, dx, dw, dy, x, w, m, k, n, accumulate_dx, stream);
}

void linear_forward(bf16* y, const bf16* x, const bf16* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream) {
  forward(CUDA_R_16BF, y, x, w, m, k, n, stream);
}

void linear_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, int64_t m,
                     int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream) {
  backward(CUDA_R_16BF, dx, dw, dy, x, w, m, k, n, accumulate_dx, stream);
}

void linear_forward(fp16* y, const fp16* x, const fp16* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream) {
  forward(CUDA_R_16F, y, x, w, m, k, n, stream);
}

void linear_backward(fp16* dx, float* dw, const fp16* dy, const fp16* x, const fp16* w, int64_t m,
                     int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream) {
  backward(CUDA_R_16F, dx, dw, dy, x, w, m, k, n, accumulate_dx, stream);
}

}  // namespace mds::ops::cuda
