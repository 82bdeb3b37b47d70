// Micro-benchmarks of the CPU kernels (kernels/cpu), per weight type and instruction set:
//   dot_f32/T/ISA, dot_act/T/ISA  one row of 4096 elements, hot in cache (kernel throughput)
//   dequantize/T/ISA               one row of 4096 elements
//   quantize_act/A/ISA             one row of 4096 f32 activations to A (Q8_0 or Q8_K)
//   matmul/T/ISA/tokens:N/threads:K  W [2048][5632] (n_out x n_in) times N activation rows, the
//                                  fast path (activations quantized), on best_isa(); calls
//                                  rotate over copies of W larger than the caches, so weights
//                                  stream from memory. MOMENTKV_ISA=scalar runs it on scalar.
//   attention/PATH/slots:N/threads:K  one decode token's attention in one layer of the
//                                  TinyLlama-1.1B shape (32 query heads, 4 KV heads, head_dim 64,
//                                  f16 KV) over N resident slots; calls rotate over four copies of
//                                  22 layers, so at 2,048 slots the cache (184 MB) streams from
//                                  memory as in decode. bytes_per_second counts K and V bytes
//                                  read; FLOP/s the two multiply-adds per query head, slot and
//                                  element.
//   read_bandwidth/threads:K       the machine's limit beside it: summing a 256 MiB buffer
// ISA is scalar and the best one this CPU has. bytes_per_second counts weight bytes
// (f32 input bytes for quantize_act); FLOP/s counts a multiply and an add per weight element and
// activation row.
//
// Build and run (README "Benchmarks"): bash scripts/bench-kernels.sh [--benchmark_filter=REGEX]
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/kv/kv_cells.h"
#include "core/kv/kv_storage.h"
#include "core/tensor/ggml_type.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv {
namespace {

using kernels::Isa;

constexpr int64_t kRowElems = 4096;
constexpr int64_t kMatIn = 5632;   // TinyLlama-1.1B's n_ff: ffn_down is [2048][5632]
constexpr int64_t kMatOut = 2048;  // its n_embd
constexpr int64_t kBandwidthBytes = int64_t{256} << 20;
// More weight bytes than any last-level cache here (32 MiB L3 on the x86 test machine).
constexpr int64_t kStreamBytes = int64_t{96} << 20;

constexpr GgmlType kWeightTypes[] = {
    GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
    GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
};

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

size_t row_size(GgmlType t, int64_t n) {
  return static_cast<size_t>(row_bytes(t, static_cast<uint64_t>(n)).value());
}

// `n_rows` rows of `n` random elements in type t (reference quantizer), built once per shape.
const std::vector<std::byte>& weights(GgmlType t, int64_t n_rows, int64_t n) {
  static std::map<std::string, std::vector<std::byte>> cache;
  const std::string key = type_name(t) + "/" + std::to_string(n_rows) + "x" + std::to_string(n);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const auto values = random_values(n_rows * n, 1);
  std::vector<std::byte> w(row_size(t, n) * static_cast<size_t>(n_rows));
  kernels::type_kernels(t, Isa::kScalar).quantize(values.data(), w.data(), n_rows * n);
  return cache.emplace(key, std::move(w)).first->second;
}

void set_rates(benchmark::State& state, size_t bytes_per_iter, double flops_per_iter) {
  const auto iters = static_cast<int64_t>(state.iterations());
  state.SetBytesProcessed(iters * static_cast<int64_t>(bytes_per_iter));
  if (flops_per_iter > 0) {
    state.counters["FLOP/s"] = benchmark::Counter(flops_per_iter * static_cast<double>(iters),
                                                  benchmark::Counter::kIsRate);
  }
}

void bench_dot_f32(benchmark::State& state, GgmlType t, Isa isa) {
  const auto& k = kernels::type_kernels(t, isa);
  const auto& w = weights(t, 1, kRowElems);
  const auto x = random_values(kRowElems, 2);
  for (auto _ : state) benchmark::DoNotOptimize(k.dot_f32(w.data(), x.data(), kRowElems));
  set_rates(state, w.size(), 2.0 * kRowElems);
}

void bench_dot_act(benchmark::State& state, GgmlType t, Isa isa) {
  const auto& k = kernels::type_kernels(t, isa);
  const auto& w = weights(t, 1, kRowElems);
  const auto x = random_values(kRowElems, 2);
  std::vector<std::byte> xq(kernels::act_row_bytes(k, kRowElems));
  const void* act = x.data();  // float weight types take the f32 row as it is
  if (k.quantize_act != nullptr) {
    k.quantize_act(x.data(), xq.data(), kRowElems);
    act = xq.data();
  }
  for (auto _ : state) benchmark::DoNotOptimize(k.dot_act(w.data(), act, kRowElems));
  set_rates(state, w.size(), 2.0 * kRowElems);
}

void bench_dequantize(benchmark::State& state, GgmlType t, Isa isa) {
  const auto& k = kernels::type_kernels(t, isa);
  const auto& w = weights(t, 1, kRowElems);
  std::vector<float> out(static_cast<size_t>(kRowElems));
  for (auto _ : state) {
    k.dequantize(w.data(), out.data(), kRowElems);
    benchmark::ClobberMemory();
  }
  set_rates(state, w.size(), 0);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRowElems);
}

// quantize_act of `t`'s activation type (Q8_0 for Q4_0, Q8_K for Q4_K).
void bench_quantize_act(benchmark::State& state, GgmlType t, Isa isa) {
  const auto& k = kernels::type_kernels(t, isa);
  const auto x = random_values(kRowElems, 2);
  std::vector<std::byte> xq(kernels::act_row_bytes(k, kRowElems));
  for (auto _ : state) {
    k.quantize_act(x.data(), xq.data(), kRowElems);
    benchmark::ClobberMemory();
  }
  set_rates(state, x.size() * sizeof(float), 0);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRowElems);
}

void bench_matmul(benchmark::State& state, GgmlType t, int64_t n_tokens, int n_threads) {
  // Copies of W that together exceed the last-level cache, used in turn, so that each call
  // reads its weights from memory as a decode step does.
  const auto& w = weights(t, kMatOut, kMatIn);
  const size_t n_copies = static_cast<size_t>(kStreamBytes) / w.size() + 1;
  std::vector<std::vector<std::byte>> copies(n_copies, w);
  const auto x = random_values(n_tokens * kMatIn, 2);
  std::vector<float> y(static_cast<size_t>(n_tokens * kMatOut));
  ThreadPool pool(n_threads);
  size_t next = 0;
  for (auto _ : state) {
    kernels::matmul(pool, t, copies[next].data(), kMatIn, kMatOut, x.data(), n_tokens, y.data(),
                    kernels::MatmulMode::kFast);
    benchmark::ClobberMemory();
    next = (next + 1) % n_copies;
  }
  set_rates(state, w.size(), 2.0 * static_cast<double>(kMatIn * kMatOut * n_tokens));
}

// Sums a buffer larger than any cache: the read bandwidth the matmul figures are bound by.
void bench_read_bandwidth(benchmark::State& state, int n_threads) {
  static const std::vector<uint64_t> buffer(static_cast<size_t>(kBandwidthBytes / 8), 1);
  ThreadPool pool(n_threads);
  std::vector<uint64_t> sums(static_cast<size_t>(n_threads) * 8);  // a cache line per thread
  const int64_t n_chunks = n_threads;
  for (auto _ : state) {
    pool.parallel_for(n_chunks, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const int64_t n = static_cast<int64_t>(buffer.size());
        const uint64_t* p = buffer.data() + n * c / n_chunks;
        const uint64_t* stop = buffer.data() + n * (c + 1) / n_chunks;
        uint64_t a = 0, b = 0, d = 0, e = 0;
        for (; p + 4 <= stop; p += 4) {
          a += p[0];
          b += p[1];
          d += p[2];
          e += p[3];
        }
        sums[static_cast<size_t>(c) * 8] = a + b + d + e;
      }
    });
    benchmark::DoNotOptimize(sums.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, static_cast<size_t>(kBandwidthBytes), 0);
}

// One decode token's attention, layer after layer of a TinyLlama-shaped f16 cache of n_slots.
void bench_attention(benchmark::State& state, kernels::AttentionPath path, int32_t n_slots,
                     int n_threads) {
  // Calls rotate over four copies of the 22 layers (184 MB at 2,048 slots): past the last-level
  // cache, as in decode, where the weights streaming through push the cache out between tokens.
  constexpr int32_t kLayers = 4 * 22, kHeads = 32, kHeadsKv = 4, kHeadDim = 64;
  KvStorage kv(KvType::kF16, kLayers * kHeadsKv, n_slots, kHeadDim);
  std::vector<KvCells> lanes(static_cast<size_t>(kLayers * kHeadsKv), KvCells(n_slots));
  const auto rows = random_values(2 * kHeadDim, 3);
  for (int32_t lane = 0; lane < kLayers * kHeadsKv; ++lane) {
    for (int32_t s = 0; s < n_slots; ++s) {
      lanes[static_cast<size_t>(lane)].add(s, Region::kDecode, s);
      kv.write(lane, s, rows.data(), rows.data() + kHeadDim);
    }
  }
  const auto q = random_values(kHeads * kHeadDim, 4);
  std::vector<float> out(q.size());
  const int32_t q_pos = n_slots;
  ThreadPool pool(n_threads);
  AttentionArgs a;
  a.n_tokens = 1;
  a.n_head = kHeads;
  a.n_head_kv = kHeadsKv;
  a.head_dim = kHeadDim;
  a.scale = 0.125f;
  a.q = q.data();
  a.q_pos = &q_pos;
  a.out = out.data();
  a.kv = &kv;
  int32_t layer = 0;
  for (auto _ : state) {
    a.layer = layer;
    a.lanes = lanes.data() + static_cast<size_t>(layer) * kHeadsKv;
    kernels::attention(pool, a, kernels::best_isa(), path);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    layer = (layer + 1) % kLayers;
  }
  const double bytes =
      2.0 * kHeadsKv * static_cast<double>(n_slots) * static_cast<double>(kv.row_bytes());
  set_rates(state, static_cast<size_t>(bytes),
            4.0 * kHeads * static_cast<double>(n_slots) * kHeadDim);
}

// Concatenates parts with append (GCC 12 -O3 warns falsely on chains of std::string operator+).
std::string join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (const auto part : parts) out.append(part);
  return out;
}

void register_all() {
  const std::vector<Isa> isas = kernels::supported_isas();
  for (const int n_threads : {1, 2}) {
    const std::string name = join({"read_bandwidth/threads:", std::to_string(n_threads)});
    benchmark::RegisterBenchmark(name.c_str(), bench_read_bandwidth, n_threads)->UseRealTime();
  }
  for (const GgmlType t : kWeightTypes) {
    for (const Isa isa : isas) {
      const std::string suffix = join({"/", type_name(t), "/", kernels::isa_name(isa)});
      benchmark::RegisterBenchmark(join({"dot_f32", suffix}).c_str(), bench_dot_f32, t, isa);
      benchmark::RegisterBenchmark(join({"dot_act", suffix}).c_str(), bench_dot_act, t, isa);
      benchmark::RegisterBenchmark(join({"dequantize", suffix}).c_str(), bench_dequantize, t, isa);
    }
  }
  for (const GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_K}) {
    for (const Isa isa : isas) {
      const auto act = kernels::type_kernels(t, isa).act_type;
      const std::string name = join({"quantize_act/", type_name(act), "/", kernels::isa_name(isa)});
      benchmark::RegisterBenchmark(name.c_str(), bench_quantize_act, t, isa);
    }
  }
  for (const kernels::AttentionPath path : kernels::attention_paths()) {
    for (const int32_t n_slots : {128, 2048}) {
      for (const int n_threads : {1, 2}) {
        const std::string name =
            join({"attention/", kernels::attention_path_name(path),
                  "/slots:", std::to_string(n_slots), "/threads:", std::to_string(n_threads)});
        benchmark::RegisterBenchmark(name.c_str(), bench_attention, path, n_slots, n_threads)
            ->UseRealTime();
      }
    }
  }
  const std::string best = kernels::isa_name(kernels::best_isa());
  for (const GgmlType t : kWeightTypes) {
    for (const int64_t n_tokens : {int64_t{1}, int64_t{64}}) {
      for (const int n_threads : {1, 2}) {
        const std::string name =
            join({"matmul/", type_name(t), "/", best, "/tokens:", std::to_string(n_tokens),
                  "/threads:", std::to_string(n_threads)});
        benchmark::RegisterBenchmark(name.c_str(), bench_matmul, t, n_tokens, n_threads)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
}

}  // namespace
}  // namespace momentkv

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("momentkv_best_isa",
                              momentkv::kernels::isa_name(momentkv::kernels::best_isa()));
  benchmark::AddCustomContext("command", "bash scripts/bench-kernels.sh");
  momentkv::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
