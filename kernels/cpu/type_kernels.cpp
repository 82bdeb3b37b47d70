// The per-type kernel tables, one per instruction set, and the run-time choice between them.
// Scalar is complete; a fast table starts as a copy of scalar and overrides what it implements.
#include "kernels/cpu/type_kernels.h"

#include <array>
#include <cstddef>
#include <cstdlib>
#include <string>
#if MOMENTKV_HAVE_AVX2
#include <cpuid.h>
#endif

#include "core/util/error.h"
#include "kernels/cpu/kquants.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels {

namespace {

using DotF32 = float (*)(const void*, const float*, int64_t);

// dot_act for float weight types: the "activation" is the f32 row itself.
template <DotF32 F>
float dot_act_f32(const void* w, const void* x, int64_t n) {
  return F(w, static_cast<const float*>(x), n);
}

using DotAct = float (*)(const void*, const void*, int64_t);
using DotActN = void (*)(const void*, const void*, int64_t, int64_t, float*);

// The reference dot_act_4 / dot_act_2: dot_act once per activation row.
template <DotAct F, int N>
void dot_act_n_loop(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  for (int k = 0; k < N; ++k) out[k] = F(w, static_cast<const std::byte*>(xq) + k * xq_stride, n);
}

// Dense index of the types with kernels; -1 for the others.
constexpr int kNumTypes = 11;
int type_index(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::BF16:
      return 2;
    case GgmlType::Q4_0:
      return 3;
    case GgmlType::Q4_1:
      return 4;
    case GgmlType::Q5_0:
      return 5;
    case GgmlType::Q5_1:
      return 6;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::Q4_K:
      return 8;
    case GgmlType::Q5_K:
      return 9;
    case GgmlType::Q6_K:
      return 10;
    default:
      return -1;
  }
}

using Table = std::array<TypeKernels, kNumTypes>;

void set(Table& table, GgmlType t, TypeKernels k) {
  table[type_index(t)] = k;
}

Table scalar_table() {
  using namespace scalar;
  Table t{};
  set(t, GgmlType::F32,
      {dequantize_f32, dot_f32_f32, GgmlType::F32, nullptr, dot_act_f32<dot_f32_f32>,
       quantize_f32});
  set(t, GgmlType::F16,
      {dequantize_f16, dot_f32_f16, GgmlType::F32, nullptr, dot_act_f32<dot_f32_f16>,
       quantize_f16});
  set(t, GgmlType::BF16,
      {dequantize_bf16, dot_f32_bf16, GgmlType::F32, nullptr, dot_act_f32<dot_f32_bf16>,
       quantize_bf16});
  set(t, GgmlType::Q4_0,
      {dequantize_q4_0, dot_f32_q4_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q4_0, quantize_q4_0});
  set(t, GgmlType::Q4_1,
      {dequantize_q4_1, dot_f32_q4_1, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q4_1, quantize_q4_1});
  set(t, GgmlType::Q5_0,
      {dequantize_q5_0, dot_f32_q5_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q5_0, quantize_q5_0});
  set(t, GgmlType::Q5_1,
      {dequantize_q5_1, dot_f32_q5_1, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q5_1, quantize_q5_1});
  set(t, GgmlType::Q8_0,
      {dequantize_q8_0, dot_f32_q8_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q8_0, quantize_q8_0});
  set(t, GgmlType::Q4_K,
      {dequantize_q4_k, dot_f32_q4_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q4_k, quantize_q4_k});
  set(t, GgmlType::Q5_K,
      {dequantize_q5_k, dot_f32_q5_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q5_k, quantize_q5_k});
  set(t, GgmlType::Q6_K,
      {dequantize_q6_k, dot_f32_q6_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q6_k, quantize_q6_k});
  t[type_index(GgmlType::Q4_0)].dot_act_4 = dot_act_n_loop<dot_q8_0_q4_0, 4>;
  t[type_index(GgmlType::Q8_0)].dot_act_4 = dot_act_n_loop<dot_q8_0_q8_0, 4>;
  t[type_index(GgmlType::Q4_K)].dot_act_4 = dot_act_n_loop<dot_q8k_q4_k, 4>;
  t[type_index(GgmlType::Q6_K)].dot_act_4 = dot_act_n_loop<dot_q8k_q6_k, 4>;
  t[type_index(GgmlType::Q4_0)].dot_act_2 = dot_act_n_loop<dot_q8_0_q4_0, 2>;
  t[type_index(GgmlType::Q8_0)].dot_act_2 = dot_act_n_loop<dot_q8_0_q8_0, 2>;
  t[type_index(GgmlType::Q4_K)].dot_act_2 = dot_act_n_loop<dot_q8k_q4_k, 2>;
  t[type_index(GgmlType::Q6_K)].dot_act_2 = dot_act_n_loop<dot_q8k_q6_k, 2>;
  t[type_index(GgmlType::F32)].accumulate = accumulate_f32;
  t[type_index(GgmlType::F16)].accumulate = accumulate_f16;
  return t;
}

#if MOMENTKV_HAVE_AVX2
Table avx2_table() {
  using namespace avx2;
  Table t = scalar_table();
  // Weight quantizers stay scalar (offline work, and the reference rounding is the contract).
  auto fast = [&t](GgmlType type, TypeKernels k) {
    k.quantize = t[type_index(type)].quantize;
    set(t, type, k);
  };
  fast(GgmlType::F32, {scalar::dequantize_f32, dot_f32_f32, GgmlType::F32, nullptr,
                       dot_act_f32<dot_f32_f32>, nullptr});
  fast(GgmlType::F16,
       {dequantize_f16, dot_f32_f16, GgmlType::F32, nullptr, dot_act_f32<dot_f32_f16>, nullptr});
  fast(GgmlType::BF16,
       {dequantize_bf16, dot_f32_bf16, GgmlType::F32, nullptr, dot_act_f32<dot_f32_bf16>, nullptr});
  fast(GgmlType::Q4_0,
       {dequantize_q4_0, dot_f32_q4_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q4_0, nullptr});
  fast(GgmlType::Q4_1,
       {dequantize_q4_1, dot_f32_q4_1, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q4_1, nullptr});
  fast(GgmlType::Q5_0,
       {dequantize_q5_0, dot_f32_q5_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q5_0, nullptr});
  fast(GgmlType::Q5_1,
       {dequantize_q5_1, dot_f32_q5_1, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q5_1, nullptr});
  fast(GgmlType::Q8_0,
       {dequantize_q8_0, dot_f32_q8_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q8_0, nullptr});
  fast(GgmlType::Q4_K,
       {dequantize_q4_k, dot_f32_q4_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q4_k, nullptr});
  fast(GgmlType::Q5_K,
       {dequantize_q5_k, dot_f32_q5_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q5_k, nullptr});
  fast(GgmlType::Q6_K,
       {dequantize_q6_k, dot_f32_q6_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q6_k, nullptr});
  t[type_index(GgmlType::Q4_0)].dot_act_4 = dot_q8_0_q4_0_x4;
  t[type_index(GgmlType::Q8_0)].dot_act_4 = dot_q8_0_q8_0_x4;
  t[type_index(GgmlType::Q4_K)].dot_act_4 = dot_q8k_q4_k_x4;
  t[type_index(GgmlType::Q5_K)].dot_act_4 = dot_q8k_q5_k_x4;
  t[type_index(GgmlType::Q6_K)].dot_act_4 = dot_q8k_q6_k_x4;
  t[type_index(GgmlType::Q4_0)].dot_act_2 = dot_q8_0_q4_0_x2;
  t[type_index(GgmlType::Q8_0)].dot_act_2 = dot_q8_0_q8_0_x2;
  t[type_index(GgmlType::Q4_K)].dot_act_2 = dot_q8k_q4_k_x2;
  t[type_index(GgmlType::Q5_K)].dot_act_2 = dot_q8k_q5_k_x2;
  t[type_index(GgmlType::Q6_K)].dot_act_2 = dot_q8k_q6_k_x2;
  t[type_index(GgmlType::F32)].accumulate = accumulate_f32;
  t[type_index(GgmlType::F16)].accumulate = accumulate_f16;
  return t;
}

// The AVX2 table with one VNNI namespace's integer dots (MOMENTKV_VNNI_DECLS in quants.h):
// Q4_0, Q5_0 and Q8_0 share that namespace's activation layout (Q8_0 blocks, then its per-row
// data), so all three take its quantize_act; Q4_K, Q5_K and Q6_K take its dots (kquants.h) on
// avx2's Q8_K activations. AVX-VNNI appends per-row sums and scales (avxvnni/quants.cpp); AVX-512
// VNNI per four blocks their quants, corrections and scales (avx512/quants.cpp).
#define MOMENTKV_VNNI_TABLE(ns)                                                          \
  [] {                                                                                   \
    Table t = avx2_table();                                                              \
    auto dots = [&t](GgmlType type, DotAct dot, DotActN dot2, DotActN dot4) {            \
      TypeKernels& k = t[type_index(type)];                                              \
      k.dot_act = dot;                                                                   \
      k.dot_act_2 = dot2;                                                                \
      k.dot_act_4 = dot4;                                                                \
    };                                                                                   \
    auto vnni = [&t, &dots](GgmlType type, DotAct dot, DotActN dot2, DotActN dot4) {     \
      t[type_index(type)].quantize_act = ns::quantize_q8_0;                              \
      t[type_index(type)].act_row_bytes = ns::act_row_bytes_q8_0;                        \
      dots(type, dot, dot2, dot4);                                                       \
    };                                                                                   \
    vnni(GgmlType::Q4_0, ns::dot_q8_0_q4_0, ns::dot_q8_0_q4_0_x2, ns::dot_q8_0_q4_0_x4); \
    vnni(GgmlType::Q5_0, ns::dot_q8_0_q5_0, ns::dot_q8_0_q5_0_x2, ns::dot_q8_0_q5_0_x4); \
    vnni(GgmlType::Q8_0, ns::dot_q8_0_q8_0, ns::dot_q8_0_q8_0_x2, ns::dot_q8_0_q8_0_x4); \
    dots(GgmlType::Q4_K, ns::dot_q8k_q4_k, ns::dot_q8k_q4_k_x2, ns::dot_q8k_q4_k_x4);    \
    dots(GgmlType::Q5_K, ns::dot_q8k_q5_k, ns::dot_q8k_q5_k_x2, ns::dot_q8k_q5_k_x4);    \
    dots(GgmlType::Q6_K, ns::dot_q8k_q6_k, ns::dot_q8k_q6_k_x2, ns::dot_q8k_q6_k_x4);    \
    return t;                                                                            \
  }()

Table avx_vnni_table() {
  return MOMENTKV_VNNI_TABLE(avxvnni);
}

Table avx512_vnni_table() {
  return MOMENTKV_VNNI_TABLE(avx512);
}
#undef MOMENTKV_VNNI_TABLE

// AVX2 and FMA (with the OS's YMM state, which __builtin_cpu_supports checks) and F16C (CPUID
// leaf 1, ECX bit 29: clang 14's __builtin_cpu_supports has no "f16c").
bool cpu_has_avx2() {
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && (ecx & (1u << 29)) != 0;
}

// CPUID leaf 7 sub-leaf 1, EAX bit 4 (clang 14's __builtin_cpu_supports has no "avxvnni"); the
// OS's YMM state support is part of cpu_has_avx2().
bool cpu_has_avx_vnni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return cpu_has_avx2() && (eax & (1u << 4)) != 0;
}

// AVX-512 F, BW and VL (with the OS's ZMM state, which __builtin_cpu_supports checks) and VNNI
// (CPUID leaf 7 sub-leaf 0, ECX bit 11).
bool cpu_has_avx512_vnni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && (ecx & (1u << 11)) != 0;
}
#endif

#if MOMENTKV_HAVE_NEON
Table neon_table() {
  using namespace neon;
  Table t = scalar_table();
  auto fast = [&t](GgmlType type, TypeKernels k) {
    k.quantize = t[type_index(type)].quantize;
    set(t, type, k);
  };
  // Partial sets keep the scalar entries they do not name.
  TypeKernels f32 = t[type_index(GgmlType::F32)];
  f32.dot_f32 = dot_f32_f32;
  f32.dot_act = dot_act_f32<dot_f32_f32>;
  fast(GgmlType::F32, f32);
  TypeKernels f16 = t[type_index(GgmlType::F16)];
  f16.dequantize = dequantize_f16;
  f16.dot_f32 = dot_f32_f16;
  f16.dot_act = dot_act_f32<dot_f32_f16>;
  fast(GgmlType::F16, f16);
  fast(GgmlType::Q4_0,
       {dequantize_q4_0, dot_f32_q4_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q4_0, nullptr});
  fast(GgmlType::Q8_0,
       {dequantize_q8_0, dot_f32_q8_0, GgmlType::Q8_0, quantize_q8_0, dot_q8_0_q8_0, nullptr});
  // The other 32-block types keep scalar dots but share the NEON activation quantizer, which is
  // bit-identical to the scalar one.
  for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1}) {
    t[type_index(type)].quantize_act = quantize_q8_0;
  }
  fast(GgmlType::Q4_K,
       {dequantize_q4_k, dot_f32_q4_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q4_k, nullptr});
  fast(GgmlType::Q5_K,
       {dequantize_q5_k, dot_f32_q5_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q5_k, nullptr});
  fast(GgmlType::Q6_K,
       {dequantize_q6_k, dot_f32_q6_k, GgmlType::Q8_K, quantize_q8_k, dot_q8k_q6_k, nullptr});
  t[type_index(GgmlType::F32)].accumulate = accumulate_f32;
  t[type_index(GgmlType::F16)].accumulate = accumulate_f16;
  return t;
}
#endif

Isa detect_isa() {
  if (const char* forced = std::getenv("MOMENTKV_ISA"); forced != nullptr && *forced != '\0') {
    const std::string name = forced;
    if (name == "scalar") return Isa::kScalar;
#if MOMENTKV_HAVE_AVX2
    if (name == "avx2") return Isa::kAvx2;
    if (name == "avx-vnni") return Isa::kAvxVnni;
    if (name == "avx512-vnni") return Isa::kAvx512Vnni;
#endif
#if MOMENTKV_HAVE_NEON
    if (name == "neon") return Isa::kNeon;
#endif
    throw Error("MOMENTKV_ISA=" + name + " is not an instruction set of this build");
  }
#if MOMENTKV_HAVE_AVX2
  if (cpu_has_avx512_vnni()) return Isa::kAvx512Vnni;
  if (cpu_has_avx_vnni()) return Isa::kAvxVnni;
  if (cpu_has_avx2()) return Isa::kAvx2;
#endif
#if MOMENTKV_HAVE_NEON
  return Isa::kNeon;  // armv8.2-a+fp16+dotprod is the build's baseline for aarch64
#endif
  return Isa::kScalar;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvxVnni:
      return "avx-vnni";
    case Isa::kAvx512Vnni:
      return "avx512-vnni";
    case Isa::kNeon:
      return "neon";
  }
  return "unknown";
}

Isa best_isa() {
  static const Isa isa = detect_isa();
  return isa;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas = {Isa::kScalar};
#if MOMENTKV_HAVE_AVX2
  if (cpu_has_avx2()) isas.push_back(Isa::kAvx2);
  if (cpu_has_avx_vnni()) isas.push_back(Isa::kAvxVnni);
  if (cpu_has_avx512_vnni()) isas.push_back(Isa::kAvx512Vnni);
#endif
#if MOMENTKV_HAVE_NEON
  isas.push_back(Isa::kNeon);
#endif
  return isas;
}

bool has_avx2(Isa isa) {
  return isa == Isa::kAvx2 || isa == Isa::kAvxVnni || isa == Isa::kAvx512Vnni;
}

uint64_t act_row_bytes(const TypeKernels& k, int64_t n) {
  if (k.act_row_bytes != nullptr) return k.act_row_bytes(n);
  const auto bytes = row_bytes(k.act_type, static_cast<uint64_t>(n));
  check(bytes.has_value(), [&] {
    return "activation row of " + std::to_string(n) + " elements is not a whole number of " +
           type_name(k.act_type) + " blocks";
  });
  return *bytes;
}

const TypeKernels& type_kernels(GgmlType t, Isa isa) {
  const int index = type_index(t);
  if (index < 0) throw Error("no CPU kernels for tensor type " + type_name(t));
  switch (isa) {
    case Isa::kScalar: {
      static const Table table = scalar_table();
      return table[index];
    }
    case Isa::kAvx2: {
#if MOMENTKV_HAVE_AVX2
      static const Table table = avx2_table();
      return table[index];
#else
      break;
#endif
    }
    case Isa::kAvxVnni: {
#if MOMENTKV_HAVE_AVX2
      static const Table table = avx_vnni_table();
      return table[index];
#else
      break;
#endif
    }
    case Isa::kAvx512Vnni: {
#if MOMENTKV_HAVE_AVX2
      static const Table table = avx512_vnni_table();
      return table[index];
#else
      break;
#endif
    }
    case Isa::kNeon: {
#if MOMENTKV_HAVE_NEON
      static const Table table = neon_table();
      return table[index];
#else
      break;
#endif
    }
  }
  throw Error(std::string("instruction set ") + isa_name(isa) + " is not compiled into this build");
}

}  // namespace momentkv::kernels
