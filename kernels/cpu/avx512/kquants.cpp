// Q4_K, Q5_K and Q6_K weights against Q8_K activations on AVX-512 VNNI machines: the AVX2 kernels
// (avx2/kquant_dots.h) with one 256-bit vpdpwssd (EVEX, AVX-512 VL + VNNI: CPUs with AVX-512
// VNNI need not have AVX-VNNI) where AVX2 needs a madd and an add. The same bits as avx2's; the
// other K-quant kernels are avx2's. avx512/intrinsics.h comes first (see there).
#include "kernels/cpu/avx512/intrinsics.h"

#include <cstdint>

#include "kernels/cpu/avx2/kquant_dots.h"
#include "kernels/cpu/kquants.h"

namespace momentkv::kernels::avx512 {
namespace {

struct Dpwssd {
  static __m256i add(__m256i sum, __m256i pairs, __m256i scales) {
    return _mm256_dpwssd_epi32(sum, pairs, scales);
  }
};

}  // namespace

MOMENTKV_KQUANT_DOTS(Dpwssd)

}  // namespace momentkv::kernels::avx512
