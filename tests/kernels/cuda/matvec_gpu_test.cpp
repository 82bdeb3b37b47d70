// The CUDA mat-vec (kernels/cuda/matvec.h) against the CPU scalar reference: for every weight
// type it supports, rows of random values quantized by the reference quantizer, a random
// activation row, n_out not a multiple of the rows per thread block, n_in of one and several
// blocks per lane. Tolerance: the two sum in different orders, so |gpu - cpu| <= 1e-5 (relative)
// of sum |w_i x_i| (f32 rounding over a few thousand terms is far below it). Skipped at run time
// when the machine has no CUDA device (label gpu).
#include "kernels/cuda/matvec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <vector>

#include "core/util/error.h"
#include "kernels/cpu/type_kernels.h"
#include "kernels/cuda/device.h"
#include "tests/kernels/cuda/device_vectors.h"

namespace momentkv::kernels::cuda {
namespace {

using testing::download;
using testing::random_values;
using testing::upload;

TEST(CudaMatvec, MatchesTheScalarReference) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  struct Shape {
    int64_t n_out, n_in;
  };
  for (const GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q8_0,
                           GgmlType::Q4_K, GgmlType::Q6_K}) {
    const bool k_quant = t == GgmlType::Q4_K || t == GgmlType::Q6_K;
    std::vector<Shape> shapes = {{37, k_quant ? 256 : 64}, {130, 2048}, {5, 11264}};
    if (t == GgmlType::F32 || t == GgmlType::F16) shapes.push_back({9, 100});
    for (const Shape& s : shapes) {
      SCOPED_TRACE(type_name(t) + " " + std::to_string(s.n_out) + "x" + std::to_string(s.n_in));
      const TypeKernels& ref = type_kernels(t, Isa::kScalar);
      const auto values = random_values(static_cast<size_t>(s.n_out * s.n_in), 1);
      const uint64_t rb = row_bytes(t, static_cast<uint64_t>(s.n_in)).value();
      std::vector<uint8_t> w(rb * static_cast<uint64_t>(s.n_out));
      ref.quantize(values.data(), w.data(), s.n_out * s.n_in);
      const auto x = random_values(static_cast<size_t>(s.n_in), 2);

      DeviceArena arena(w.size() + 3 * 256 + (x.size() + static_cast<size_t>(s.n_out)) * 4);
      const uint8_t* dw = upload(arena, w);
      const float* dx = upload(arena, x);
      auto* dy = static_cast<float*>(arena.allocate(static_cast<uint64_t>(s.n_out) * 4));
      matvec(t, dw, s.n_out, s.n_in, dx, dy);
      const std::vector<float> y = download(dy, static_cast<size_t>(s.n_out));

      std::vector<float> row(static_cast<size_t>(s.n_in));
      for (int64_t r = 0; r < s.n_out; ++r) {
        const uint8_t* wr = w.data() + rb * static_cast<uint64_t>(r);
        const float expected = ref.dot_f32(wr, x.data(), s.n_in);
        ref.dequantize(wr, row.data(), s.n_in);
        double magnitude = 0.0;
        for (size_t i = 0; i < row.size(); ++i) magnitude += std::fabs(double{row[i]} * x[i]);
        ASSERT_NEAR(y[static_cast<size_t>(r)], expected, 1e-5 * magnitude + 1e-6) << "row " << r;
      }
    }
  }
}

// Refused before any device work, so this holds on any machine.
TEST(CudaMatvec, RefusesTypesWithoutAKernelAndBadShapes) {
  EXPECT_FALSE(matvec_supports(GgmlType::Q5_1));
  EXPECT_TRUE(matvec_supports(GgmlType::Q4_K));
  float y = 0.0f;
  EXPECT_THROW(matvec(GgmlType::Q5_1, nullptr, 1, 32, nullptr, &y), Error);
  EXPECT_THROW(matvec(GgmlType::Q4_K, nullptr, 1, 100, nullptr, &y), Error);  // not 256-blocks
  EXPECT_THROW(matvec(GgmlType::Q4_0, nullptr, 0, 32, nullptr, &y), Error);
}

}  // namespace
}  // namespace momentkv::kernels::cuda
