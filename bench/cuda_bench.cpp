// CUDA kernel benchmarks (a program, not a test). On device 0:
//   copy bandwidth   device-to-device copies of 512 MiB (read + write bytes per second): the
//                    limit the kernels are read against;
//   matvec/T         W of TinyLlama-1.1B's ffn_down shape [2048][5632] in type T times one
//                    activation row, calls rotating over copies of W that together exceed the
//                    L2 cache, so the weights come from device memory: µs per call, GB/s of
//                    weight bytes and the fraction of the copy bandwidth;
//   attention/N      decode attention of one layer of the TinyLlama shape (32 query heads, 4 KV
//                    heads, head_dim 64, f16 KV) over N slots with the Moment-KV update, calls
//                    rotating over 64 layers: µs per call and GB/s of K and V bytes.
//   build/bench/momentkv_cuda_bench        (bash scripts/gpu-check builds and runs it)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "core/tensor/ggml_type.h"
#include "kernels/cpu/type_kernels.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/matvec.h"

namespace momentkv {
namespace {

namespace cuda = kernels::cuda;
using Clock = std::chrono::steady_clock;

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Seconds per call of fn(i) over `iters` calls after `warm` calls, i the call's index.
template <class Fn>
double seconds_per_call(int warm, int iters, Fn fn) {
  for (int i = 0; i < warm; ++i) fn(i);
  cuda::synchronize();
  const auto start = Clock::now();
  for (int i = 0; i < iters; ++i) fn(i);
  cuda::synchronize();
  return std::chrono::duration<double>(Clock::now() - start).count() / iters;
}

void bench_matvec(cuda::DeviceArena& arena, GgmlType t, uint64_t stream_bytes, double limit) {
  constexpr int64_t kOut = 2048, kIn = 5632;
  const auto values = random_values(static_cast<size_t>(kOut * kIn), 1);
  const uint64_t rb = row_bytes(t, kIn).value();
  std::vector<uint8_t> w(rb * kOut);
  kernels::type_kernels(t, kernels::Isa::kScalar).quantize(values.data(), w.data(), kOut * kIn);
  const int n_copies = static_cast<int>(std::max<uint64_t>(1, stream_bytes / w.size() + 1));
  std::vector<void*> copies;
  for (int c = 0; c < n_copies; ++c) {
    copies.push_back(arena.allocate(w.size()));
    cuda::copy_to_device(copies.back(), w.data(), w.size());
  }
  const auto x = random_values(kIn, 2);
  auto* dx = static_cast<float*>(arena.allocate(x.size() * sizeof(float)));
  cuda::copy_to_device(dx, x.data(), x.size() * sizeof(float));
  auto* dy = static_cast<float*>(arena.allocate(kOut * sizeof(float)));
  const double s = seconds_per_call(20, 200, [&](int i) {
    cuda::matvec(t, copies[static_cast<size_t>(i % n_copies)], kOut, kIn, dx, dy);
  });
  const double gbs = static_cast<double>(w.size()) / s / 1e9;
  std::printf("matvec/%-6s %9.2f us  %8.1f GB/s  %.2f of the copy bandwidth\n",
              type_name(t).c_str(), s * 1e6, gbs, gbs * 1e9 / limit);
  arena.reset();
}

void bench_attention(cuda::DeviceArena& arena, int32_t n_slots) {
  constexpr int32_t kLayers = 64, kHeads = 32, kHeadsKv = 4, kHeadDim = 64;
  const int64_t lane_elems = 2 * int64_t{n_slots} * kHeadDim;  // K rows then V rows
  std::vector<uint16_t> kv(static_cast<size_t>(lane_elems * kHeadsKv));
  std::mt19937 rng(3);
  for (auto& h : kv) h = static_cast<uint16_t>(0x3000 + rng() % 0x0800);  // f16 in [0.125, 0.5)
  std::vector<const uint16_t*> layers;
  for (int32_t l = 0; l < kLayers; ++l) {
    auto* p = static_cast<uint16_t*>(arena.allocate(kv.size() * sizeof(uint16_t)));
    cuda::copy_to_device(p, kv.data(), kv.size() * sizeof(uint16_t));
    layers.push_back(p);
  }
  std::vector<int32_t> pos(static_cast<size_t>(kHeadsKv * n_slots));
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i % n_slots);
  const std::vector<uint8_t> evictable(pos.size(), 1);
  const std::vector<float> scores(pos.size(), 0.0f);
  const auto q = random_values(kHeads * kHeadDim, 4);
  auto upload = [&](const void* src, uint64_t bytes) {
    void* p = arena.allocate(bytes);
    cuda::copy_to_device(p, src, bytes);
    return p;
  };
  cuda::DecodeAttention a;
  a.q = static_cast<const float*>(upload(q.data(), q.size() * 4));
  a.out = static_cast<float*>(arena.allocate(q.size() * 4));
  a.n_head = kHeads;
  a.n_head_kv = kHeadsKv;
  a.head_dim = kHeadDim;
  a.scale = 0.125f;
  a.q_pos = n_slots;
  a.lane_stride = lane_elems;
  a.row_stride = kHeadDim;
  a.capacity = n_slots;
  a.n_used = n_slots;
  a.pos = static_cast<const int32_t*>(upload(pos.data(), pos.size() * 4));
  a.scores = static_cast<float*>(upload(scores.data(), scores.size() * 4));
  a.evictable = static_cast<const uint8_t*>(upload(evictable.data(), evictable.size()));
  a.probs = static_cast<float*>(arena.allocate(uint64_t{kHeads} * n_slots * 4));
  a.lane_sums = static_cast<float*>(arena.allocate(pos.size() * 4));
  const unsigned zero = 0;
  a.counter = static_cast<unsigned*>(upload(&zero, sizeof zero));
  const double s = seconds_per_call(10, 200, [&](int i) {
    a.k = layers[static_cast<size_t>(i % kLayers)];
    a.v = a.k + int64_t{n_slots} * kHeadDim;
    cuda::decode_attention(a);
  });
  const double bytes = static_cast<double>(kv.size() * sizeof(uint16_t));
  std::printf("attention/%-5d %9.2f us  %8.1f GB/s of K and V\n", n_slots, s * 1e6,
              bytes / s / 1e9);
  arena.reset();
}

int run() {
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "momentkv_cuda_bench: no CUDA device\n");
    return 1;
  }
  const cuda::DeviceInfo info = cuda::device_info(0);
  std::printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name.c_str(), info.sm_major,
              info.sm_minor, info.n_sm, static_cast<double>(info.total_bytes) / (1 << 30));
  // Room for the largest case: W copies past L2 plus attention's layers (the copy bandwidth is
  // measured first, in an arena of its own).
  const uint64_t arena_bytes = std::min<uint64_t>(info.total_bytes / 4, uint64_t{3} << 30);
  const uint64_t copy_bytes = std::min<uint64_t>(uint64_t{512} << 20, arena_bytes / 4);
  const double limit = cuda::measure_copy_bandwidth(copy_bytes);
  cuda::DeviceArena arena(arena_bytes);
  std::printf("copy bandwidth: %.1f GB/s (device to device, read + write)\n", limit / 1e9);
  const uint64_t stream_bytes = std::min<uint64_t>(uint64_t{512} << 20, arena_bytes / 4);
  for (const GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0,
                           GgmlType::Q4_K, GgmlType::Q6_K}) {
    bench_matvec(arena, t, stream_bytes, limit);
  }
  for (const int32_t n : {128, 2048}) bench_attention(arena, n);
  return 0;
}

}  // namespace
}  // namespace momentkv

int main() {
  try {
    return momentkv::run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "momentkv_cuda_bench: %s\n", e.what());
    return 1;
  }
}
