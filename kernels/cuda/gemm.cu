// Prefill GEMM (gemm.h). Column-major, as cuBLASLt sees it: W's rows [rows][n_in] are the
// columns of a k × m matrix (k = n_in), used transposed; x [n_tokens][n_in] is k × n; y's
// [n_tokens][n_out] is m × n with leading dimension n_out, so a tile of W rows r0.. writes
// y + r0. A: f16, B: f16, C = D: f32, computed in f32.
//
// libcublasLt (over 500 MB) is opened with dlopen when the first Gemm starts, not linked: a
// process that never runs the CUDA engine (every CPU user of the same binary) does not map it.
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/util/error.h"
#include "kernels/cuda/blocks.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr uint64_t kTileElements = uint64_t{16} << 20;  // f16 weights dequantized at once (32 MiB)
constexpr uint64_t kWorkspaceBytes = uint64_t{32} << 20;
constexpr int kWarps = 4;

// The cuBLASLt entry points this file calls, from the library opened at run time.
struct Lt {
  decltype(&::cublasLtCreate) cublasLtCreate = nullptr;
  decltype(&::cublasLtDestroy) cublasLtDestroy = nullptr;
  decltype(&::cublasLtMatmulDescCreate) cublasLtMatmulDescCreate = nullptr;
  decltype(&::cublasLtMatmulDescDestroy) cublasLtMatmulDescDestroy = nullptr;
  decltype(&::cublasLtMatmulDescSetAttribute) cublasLtMatmulDescSetAttribute = nullptr;
  decltype(&::cublasLtMatrixLayoutCreate) cublasLtMatrixLayoutCreate = nullptr;
  decltype(&::cublasLtMatrixLayoutDestroy) cublasLtMatrixLayoutDestroy = nullptr;
  decltype(&::cublasLtMatmulPreferenceCreate) cublasLtMatmulPreferenceCreate = nullptr;
  decltype(&::cublasLtMatmulPreferenceDestroy) cublasLtMatmulPreferenceDestroy = nullptr;
  decltype(&::cublasLtMatmulPreferenceSetAttribute) cublasLtMatmulPreferenceSetAttribute = nullptr;
  decltype(&::cublasLtMatmulAlgoGetHeuristic) cublasLtMatmulAlgoGetHeuristic = nullptr;
  decltype(&::cublasLtMatmul) cublasLtMatmul = nullptr;
  decltype(&::cublasLtGetStatusName) cublasLtGetStatusName = nullptr;
  decltype(&::cublasLtGetStatusString) cublasLtGetStatusString = nullptr;
};

template <class F>
void load_symbol(void* lib, F& f, const char* name, const std::string& soname, std::string& error) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f && error.empty()) error = soname + " has no symbol " + name;
}

// Opens libcublasLt once per process; throws Error naming what is missing.
const Lt& lt() {
  static Lt table;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string soname = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    const std::string built_with = std::string(MOMENTKV_CUDA_LIBRARY_DIR) + "/" + soname;
    if (!lib) lib = dlopen(built_with.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      error = "cannot load cuBLASLt (" + soname +
              "), needed for prompt processing on the GPU: " + dlerror();
      return;
    }
#define MOMENTKV_LT_LOAD(name) load_symbol(lib, table.name, #name, soname, error)
    MOMENTKV_LT_LOAD(cublasLtCreate);
    MOMENTKV_LT_LOAD(cublasLtDestroy);
    MOMENTKV_LT_LOAD(cublasLtMatmulDescCreate);
    MOMENTKV_LT_LOAD(cublasLtMatmulDescDestroy);
    MOMENTKV_LT_LOAD(cublasLtMatmulDescSetAttribute);
    MOMENTKV_LT_LOAD(cublasLtMatrixLayoutCreate);
    MOMENTKV_LT_LOAD(cublasLtMatrixLayoutDestroy);
    MOMENTKV_LT_LOAD(cublasLtMatmulPreferenceCreate);
    MOMENTKV_LT_LOAD(cublasLtMatmulPreferenceDestroy);
    MOMENTKV_LT_LOAD(cublasLtMatmulPreferenceSetAttribute);
    MOMENTKV_LT_LOAD(cublasLtMatmulAlgoGetHeuristic);
    MOMENTKV_LT_LOAD(cublasLtMatmul);
    MOMENTKV_LT_LOAD(cublasLtGetStatusName);
    MOMENTKV_LT_LOAD(cublasLtGetStatusString);
#undef MOMENTKV_LT_LOAD
  });
  if (!error.empty()) throw Error(error);
  return table;
}

void check_lt(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(std::string("cuBLASLt ") + what + ": " + lt().cublasLtGetStatusName(status) + " (" +
              lt().cublasLtGetStatusString(status) + ")");
}

// Rows [r0, r0 + rows) of W into tile [rows][n_in] f16: one warp per row, chunks by lane.
template <class Row>
__global__ void dequantize_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t n_in,
                                  int64_t n_chunks, int64_t r0, int64_t rows,
                                  __half* __restrict__ tile) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (r >= rows) return;
  const uint8_t* src = w + static_cast<uint64_t>(r0 + r) * row_bytes;
  __half* dst = tile + r * n_in;
  for (int64_t c = threadIdx.x % 32; c < n_chunks; c += 32) {
    float v[32];
    const int m = Row::chunk(src, c, n_in - 32 * c, v);
    for (int i = 0; i < m; ++i) dst[32 * c + i] = __float2half_rn(v[i]);
  }
}

__global__ void to_half_kernel(const float* __restrict__ x, int64_t n, __half* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2half_rn(x[i]);
}

// Descriptors and the heuristic's algorithm for one (m, n, k, ldc).
struct Plan {
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

}  // namespace

struct Gemm::State {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  void* workspace = nullptr;
  __half* tile = nullptr;
  __half* x = nullptr;
  int64_t max_n_in = 0, max_tokens = 0;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, Plan> plans;

  const Plan& plan(int64_t m, int64_t n, int64_t k, int64_t ldc) {
    const auto key = std::make_tuple(m, n, k, ldc);
    if (auto it = plans.find(key); it != plans.end()) return it->second;
    Plan p;
    check_lt(lt().cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16F, static_cast<uint64_t>(k),
                                             static_cast<uint64_t>(m), k),
             "layout of W");
    check_lt(lt().cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16F, static_cast<uint64_t>(k),
                                             static_cast<uint64_t>(n), k),
             "layout of x");
    check_lt(lt().cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, static_cast<uint64_t>(m),
                                             static_cast<uint64_t>(n), ldc),
             "layout of y");
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    check_lt(lt().cublasLtMatmulAlgoGetHeuristic(handle, op, p.a, p.b, p.c, p.c, preference, 1,
                                                 &result, &found),
             "heuristic");
    check(found > 0, "cuBLASLt has no algorithm for an f16 GEMM of " + std::to_string(m) + " x " +
                         std::to_string(n) + " x " + std::to_string(k));
    p.algo = result.algo;
    return plans.emplace(key, p).first->second;
  }

  ~State() {
    for (auto& [key, p] : plans) {
      lt().cublasLtMatrixLayoutDestroy(p.a);
      lt().cublasLtMatrixLayoutDestroy(p.b);
      lt().cublasLtMatrixLayoutDestroy(p.c);
    }
    if (preference) lt().cublasLtMatmulPreferenceDestroy(preference);
    if (op) lt().cublasLtMatmulDescDestroy(op);
    if (handle) lt().cublasLtDestroy(handle);
  }
};

uint64_t Gemm::bytes_needed(int64_t max_n_in, int64_t max_tokens) {
  const auto x_bytes = static_cast<uint64_t>(max_n_in) * static_cast<uint64_t>(max_tokens) * 2;
  return kWorkspaceBytes + kTileElements * 2 + x_bytes + 3 * 256;
}

Gemm::Gemm(DeviceArena& arena, int64_t max_n_in, int64_t max_tokens)
    : state_(std::make_unique<State>()) {
  check(max_n_in > 0 && max_tokens > 0 && static_cast<uint64_t>(max_n_in) * 64 <= kTileElements,
        "CUDA GEMM: bad limits");
  State& s = *state_;
  s.max_n_in = max_n_in;
  s.max_tokens = max_tokens;
  s.workspace = arena.allocate(kWorkspaceBytes);
  s.tile = static_cast<__half*>(arena.allocate(kTileElements * 2));
  s.x = static_cast<__half*>(
      arena.allocate(static_cast<uint64_t>(max_n_in) * static_cast<uint64_t>(max_tokens) * 2));
  check_lt(lt().cublasLtCreate(&s.handle), "create");
  check_lt(lt().cublasLtMatmulDescCreate(&s.op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
           "matmul descriptor");
  const cublasOperation_t transpose = CUBLAS_OP_T;
  check_lt(lt().cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                               sizeof transpose),
           "transpose W");
  check_lt(lt().cublasLtMatmulPreferenceCreate(&s.preference), "preference");
  const uint64_t ws = kWorkspaceBytes;
  check_lt(lt().cublasLtMatmulPreferenceSetAttribute(
               s.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
           "workspace size");
}

Gemm::~Gemm() = default;

void Gemm::matmul(GgmlType t, const void* w, int64_t n_out, int64_t n_in, const float* x,
                  int64_t n_tokens, float* y, void* stream) {
  State& s = *state_;
  check(device_reads(t), "no CUDA GEMM for " + type_name(t) + " weights");
  check(n_out > 0 && n_in > 0 && n_in <= s.max_n_in && n_tokens > 0 && n_tokens <= s.max_tokens,
        "CUDA GEMM: shape " + std::to_string(n_tokens) + " x " + std::to_string(n_in) + " · (" +
            std::to_string(n_out) + " x " + std::to_string(n_in) + ")ᵀ over its limits (" +
            std::to_string(s.max_tokens) + " rows of " + std::to_string(s.max_n_in) + ")");
  const auto rb = row_bytes(t, static_cast<uint64_t>(n_in));
  check(rb.has_value(), "CUDA GEMM: a row of " + std::to_string(n_in) +
                            " elements is not a whole number of " + type_name(t) + " blocks");
  auto* st = static_cast<cudaStream_t>(stream);
  const int64_t nx = n_tokens * n_in;
  to_half_kernel<<<static_cast<unsigned>((nx + 255) / 256), 256, 0, st>>>(x, nx, s.x);
  check_cuda(cudaGetLastError(), "CUDA GEMM: converting x");
  // Tiles of a multiple of 64 rows keep y + r0 at 256 bytes, the alignment cuBLASLt's
  // heuristic assumes by default (every buffer from the arena starts at one).
  const int64_t fit = static_cast<int64_t>(kTileElements / static_cast<uint64_t>(n_in));
  const int64_t tile_rows = std::min<int64_t>(n_out, std::max<int64_t>(fit / 64 * 64, 64));
  const int64_t n_chunks = (n_in + 31) / 32;
  const float one = 1.0f, zero = 0.0f;
  for (int64_t r0 = 0; r0 < n_out; r0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, n_out - r0);
    with_row_decoder(t, [&](auto row) {
      dequantize_kernel<decltype(row)>
          <<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), 32 * kWarps, 0, st>>>(
              static_cast<const uint8_t*>(w), *rb, n_in, n_chunks, r0, rows, s.tile);
    });
    check_cuda(cudaGetLastError(), "CUDA GEMM: dequantizing " + type_name(t));
    const Plan& p = s.plan(rows, n_tokens, n_in, n_out);
    check_lt(lt().cublasLtMatmul(s.handle, s.op, &one, s.tile, p.a, s.x, p.b, &zero, y + r0, p.c,
                                 y + r0, p.c, &p.algo, s.workspace, kWorkspaceBytes, st),
             "matmul");
  }
}

}  // namespace momentkv::kernels::cuda
