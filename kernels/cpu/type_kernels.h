// Per-type CPU kernels: dequantize, dot products and quantize, for one instruction set.
// The scalar table is the oracle; the AVX2/FMA, AVX-VNNI and NEON tables are tested against it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor/ggml_type.h"

namespace momentkv::kernels {

// kAvxVnni: the AVX2 kernels, with AVX-VNNI (vpdpbusd) integer dots for Q4_0, Q5_0 and Q8_0;
// kAvx512Vnni: the AVX2 kernels, with 512-bit AVX-512 VNNI dots for those three.
enum class Isa { kScalar, kAvx2, kAvxVnni, kAvx512Vnni, kNeon };
const char* isa_name(Isa isa);
// The best instruction set this CPU supports among those compiled in (MOMENTKV_ISA=name forces
// one: scalar, avx2, avx-vnni, avx512-vnni, neon).
Isa best_isa();
// Every instruction set compiled in that this CPU runs, scalar first (what tests compare).
std::vector<Isa> supported_isas();
// Whether `isa` includes the AVX2/FMA/F16C instructions.
bool has_avx2(Isa isa);

struct TypeKernels {
  // dst[0..n) = values of the n elements (n a multiple of the block size) at src.
  void (*dequantize)(const void* src, float* dst, int64_t n) = nullptr;
  // Exact path: sum_i w[i] * x[i] with x in f32 (activations not quantized).
  float (*dot_f32)(const void* w, const float* x, int64_t n) = nullptr;
  // Fast path: activations pre-quantized to `act_type` (Q8_0 for 32-blocks, Q8_K for K-quants,
  // F32 for float types) by `quantize_act`, then an integer dot product.
  GgmlType act_type = GgmlType::F32;
  void (*quantize_act)(const float* src, void* dst, int64_t n) = nullptr;
  float (*dot_act)(const void* w, const void* xq, int64_t n) = nullptr;
  // Quantize f32 values to this type (reference rounding); null if not offered.
  void (*quantize)(const float* src, void* dst, int64_t n) = nullptr;
  // Optional (null: call dot_act per row): out[k] = dot_act(w, xq + k * xq_stride bytes, n) for
  // k < 4, bit-identical to dot_act, unpacking each weight block once for the four rows.
  void (*dot_act_4)(const void* w, const void* xq, int64_t xq_stride, int64_t n,
                    float* out) = nullptr;
  // Optional, as dot_act_4 for two activation rows (k < 2).
  void (*dot_act_2)(const void* w, const void* xq, int64_t xq_stride, int64_t n,
                    float* out) = nullptr;
  // Optional (null: dequantize, then add): y[i] += a * value(row, i) for i < n; may round as one
  // fma (within 1 ulp of the product of a dequantize-then-add loop per element).
  void (*accumulate)(const void* row, float a, float* y, int64_t n) = nullptr;
  // Optional (null: row_bytes(act_type, n)): bytes quantize_act writes for n elements, for a
  // layout that appends per-row data to the act_type blocks (see avxvnni/quants.cpp).
  uint64_t (*act_row_bytes)(int64_t n) = nullptr;
};

// Bytes of one activation row of n elements quantized by k.quantize_act.
uint64_t act_row_bytes(const TypeKernels& k, int64_t n);

// Kernels for `t` on `isa` (falls back to scalar entries where a fast one is missing).
// Throws momentkv::Error for a type without kernels.
const TypeKernels& type_kernels(GgmlType t, Isa isa);
inline const TypeKernels& type_kernels(GgmlType t) {
  return type_kernels(t, best_isa());
}

}  // namespace momentkv::kernels
