// matmul: one dot product per (token, output row). Output rows are cut into chunks that the
// pool's threads take from a shared counter, so a thread that the OS pre-empts (the machine is
// shared) only delays the chunk it holds. For a batch of tokens a chunk is a tile of ~kTileBytes
// of weights and every token runs over the tile before moving on, so a weight row comes from
// memory once per call and from cache for the other tokens; where the type has a four-row kernel
// (dot_act_4, dot_act_2) tokens go through the tile four (then two) at a time, so each weight block
// is also unpacked once per four (two) tokens. Those kernels equal dot_act bit for bit, so every
// output is the same whatever the thread count or batch. The first pass over a chunk prefetches
// the weight rows two ahead of the one it computes: the hardware prefetcher alone left the
// loads and the arithmetic of decode barely overlapped (decode +25 %, four sequences +45 %).
#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

#include "core/util/error.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {

namespace {

constexpr int64_t kTileBytes = 32 * 1024;   // weights per tile: a comfortable fit in L1/L2
constexpr int64_t kDecodeChunkRows = 64;    // rows per chunk for one token (~70 KB of Q4_0 at 2048)
constexpr int64_t kInlineQuantizeRows = 8;  // activation rows quantized on the calling thread

uint64_t checked_row_bytes(GgmlType t, int64_t n) {
  const auto bytes = row_bytes(t, static_cast<uint64_t>(n));
  check(bytes.has_value(), [&] {
    return "row of " + std::to_string(n) + " elements is not a whole number of " + type_name(t) +
           " blocks";
  });
  return *bytes;
}

// Placeholder DotN type for the paths without multi-row kernels.
using NoDotN = void (*)(const std::byte*, const std::byte*, float*);

constexpr int64_t kPrefetchRows = 2;  // weight rows ahead that single-token rows prefetch

inline void prefetch_bytes(const std::byte* p, uint64_t n) {
  for (uint64_t i = 0; i < n; i += 64) __builtin_prefetch(p + i, 0, 0);
}

// A multi-row kernel (dot_act_2 / dot_act_4) bound to its row length and activation stride.
struct ActRows {
  void (*f)(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);
  int64_t n_in;
  int64_t stride;
  void operator()(const std::byte* row, const std::byte* a, float* out) const {
    f(row, a, stride, n_in, out);
  }
};

// Quantized activation rows of the calling thread, reused across calls.
std::vector<std::byte>& act_scratch() {
  thread_local std::vector<std::byte> buffer;
  return buffer;
}

// Rows [row_begin, row_end) of y for all tokens; Dot(w_row, act_row) -> float. The multi-row
// kernels (null: unused) fill the dots of consecutive activation rows at once: multi[0] two rows,
// multi[1] four, as DotN(w_row, act_row, out).
template <typename Dot, typename DotN>
void matmul_rows(const Dot& dot, const DotN* const multi[2], const std::byte* w, uint64_t w_stride,
                 const std::byte* act, uint64_t act_stride, int64_t n_out, int64_t n_tokens,
                 float* y, int64_t row_begin, int64_t row_end) {
  int64_t t = 0;
  for (const int64_t rows : {int64_t{4}, int64_t{2}}) {
    const DotN* dot_n = multi[rows == 4 ? 1 : 0];
    if (dot_n == nullptr) continue;
    float out[4];
    for (; t + rows <= n_tokens; t += rows) {
      const std::byte* a = act + t * act_stride;
      float* yt = y + t * n_out;
      for (int64_t o = row_begin; o < row_end; ++o) {
        // The first pass over the tile brings its weights from memory (as below).
        if (t == 0 && o + kPrefetchRows < row_end) {
          prefetch_bytes(w + (o + kPrefetchRows) * w_stride, w_stride);
        }
        (*dot_n)(w + o * w_stride, a, out);
        for (int64_t k = 0; k < rows; ++k) yt[k * n_out + o] = out[k];
      }
    }
  }
  for (; t < n_tokens; ++t) {
    const std::byte* a = act + t * act_stride;
    float* yt = y + t * n_out;
    for (int64_t o = row_begin; o < row_end; ++o) {
      // One token reads each weight byte once, from memory: ask for the row after the next
      // while this one is computed, so the loads overlap the arithmetic.
      if (t == 0 && o + kPrefetchRows < row_end) {
        prefetch_bytes(w + (o + kPrefetchRows) * w_stride, w_stride);
      }
      yt[o] = dot(w + o * w_stride, a);
    }
  }
}

// All of y, chunks of rows shared out dynamically across the pool.
template <typename Dot, typename DotN>
void matmul_parallel(ThreadPool& pool, const Dot& dot, const DotN* const multi[2],
                     const std::byte* w, uint64_t w_stride, const std::byte* act,
                     uint64_t act_stride, int64_t n_out, int64_t n_tokens, float* y) {
  // A few tokens (decode, batched decode) pass over a tile once or twice: decode-sized chunks,
  // fewer chunk ends where the prefetch of the next rows stops (a 64-row chunk of the widest
  // rows, ~200 KB, still sits in L2 for the second pass of eight tokens).
  const int64_t chunk = n_tokens <= 8
                            ? kDecodeChunkRows
                            : std::max<int64_t>(1, kTileBytes / static_cast<int64_t>(w_stride));
  const int64_t n_chunks = (n_out + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  pool.parallel_for(std::min<int64_t>(pool.size(), n_chunks), [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      matmul_rows(dot, multi, w, w_stride, act, act_stride, n_out, n_tokens, y, c * chunk,
                  std::min(n_out, (c + 1) * chunk));
    }
  });
}

}  // namespace

void matmul(ThreadPool& pool, GgmlType w_type, const void* w, int64_t n_in, int64_t n_out,
            const float* x, int64_t n_tokens, float* y, MatmulMode mode) {
  check(n_in > 0 && n_out >= 0 && n_tokens >= 0, [&] {
    return "matmul shape n_in=" + std::to_string(n_in) + " n_out=" + std::to_string(n_out) +
           " n_tokens=" + std::to_string(n_tokens);
  });
  const TypeKernels& k = type_kernels(w_type);
  const uint64_t w_stride = checked_row_bytes(w_type, n_in);
  if (n_out == 0 || n_tokens == 0) return;
  const auto* wb = static_cast<const std::byte*>(w);

  if (mode == MatmulMode::kExact || k.quantize_act == nullptr) {
    // F32 activations; for float weight types kFast is this path too.
    const auto* xb = reinterpret_cast<const std::byte*>(x);
    const uint64_t x_stride = static_cast<uint64_t>(n_in) * sizeof(float);
    auto dot = [f = k.dot_f32, n_in](const std::byte* row, const std::byte* a) {
      return f(row, reinterpret_cast<const float*>(a), n_in);
    };
    const NoDotN* const none[2] = {nullptr, nullptr};
    matmul_parallel(pool, dot, none, wb, w_stride, xb, x_stride, n_out, n_tokens, y);
    return;
  }

  const uint64_t act_stride = act_row_bytes(k, n_in);
  std::vector<std::byte>& scratch = act_scratch();
  const size_t act_bytes = static_cast<size_t>(act_stride * static_cast<uint64_t>(n_tokens));
  if (scratch.size() < act_bytes) scratch.resize(act_bytes);
  std::byte* act = scratch.data();
  if (n_tokens <= kInlineQuantizeRows) {
    // A few rows (decode, batched decode): not worth waking the pool.
    for (int64_t t = 0; t < n_tokens; ++t) k.quantize_act(x + t * n_in, act + t * act_stride, n_in);
  } else {
    pool.parallel_for(n_tokens, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t)
        k.quantize_act(x + t * n_in, act + t * act_stride, n_in);
    });
  }
  auto dot = [f = k.dot_act, n_in](const std::byte* row, const std::byte* a) {
    return f(row, a, n_in);
  };
  // Groups of four, then two, tokens unpack each weight block once; both kernels equal dot_act
  // bit for bit.
  const ActRows dot4{k.dot_act_4, n_in, static_cast<int64_t>(act_stride)};
  const ActRows dot2{k.dot_act_2, n_in, static_cast<int64_t>(act_stride)};
  const ActRows* const multi[2] = {k.dot_act_2 != nullptr && n_tokens >= 2 ? &dot2 : nullptr,
                                   k.dot_act_4 != nullptr && n_tokens >= 4 ? &dot4 : nullptr};
  matmul_parallel(pool, dot, multi, wb, w_stride, act, act_stride, n_out, n_tokens, y);
}

void get_rows(GgmlType t, const void* w, int64_t n_in, const int32_t* ids, int64_t n_ids,
              float* out) {
  const TypeKernels& k = type_kernels(t);
  const uint64_t stride = checked_row_bytes(t, n_in);
  const auto* wb = static_cast<const std::byte*>(w);
  for (int64_t i = 0; i < n_ids; ++i) {
    check(ids[i] >= 0, [&] { return "get_rows: negative row id " + std::to_string(ids[i]); });
    k.dequantize(wb + static_cast<uint64_t>(ids[i]) * stride, out + i * n_in, n_in);
  }
}

}  // namespace momentkv::kernels
