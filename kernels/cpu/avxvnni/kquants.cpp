// Q4_K, Q5_K and Q6_K weights against Q8_K activations with AVX-VNNI: the AVX2 kernels
// (avx2/kquant_dots.h) with one vpdpwssd where AVX2 needs a madd and an add. The same bits as
// avx2's; the other K-quant kernels (dequantization, f32 dots, quantize_q8_k) are avx2's.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/avx2/kquant_dots.h"
#include "kernels/cpu/kquants.h"

namespace momentkv::kernels::avxvnni {
namespace {

struct Dpwssd {
  static __m256i add(__m256i sum, __m256i pairs, __m256i scales) {
    return _mm256_dpwssd_avx_epi32(sum, pairs, scales);
  }
};

}  // namespace

MOMENTKV_KQUANT_DOTS(Dpwssd)

}  // namespace momentkv::kernels::avxvnni
