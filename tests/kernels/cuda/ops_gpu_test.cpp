// The CUDA decoder-block ops (rms_norm.h, rope.h, elementwise.h, get_rows.h) against the scalar
// reference ops (core/model/ops.h) and dequantizers, within stated tolerances: the GPU sums in
// f32 in another order and uses its own expf, so 1e-5 relative (2e-5 for silu); get_rows decodes
// each element as the reference does, so 1e-6 relative. Skipped at run time without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/model/model_config.h"
#include "core/model/ops.h"
#include "core/util/error.h"
#include "kernels/cpu/type_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/get_rows.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rope.h"
#include "tests/kernels/cuda/device_vectors.h"

namespace momentkv::kernels::cuda {
namespace {

using testing::download;
using testing::random_values;
using testing::upload;

void expect_near_relative(const std::vector<float>& got, const std::vector<float>& want,
                          double rel) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], rel * (std::fabs(double{want[i]}) + 1e-3)) << "element " << i;
  }
}

TEST(CudaOps, RmsNormMatchesTheReference) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  for (const int64_t n : {int64_t{64}, int64_t{2048}, int64_t{1000}}) {
    const int64_t rows = 5;
    const auto x = random_values(static_cast<size_t>(rows * n), 1, 3.0f);
    const auto w = random_values(static_cast<size_t>(n), 2);
    std::vector<float> want(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      ops::rms_norm(x.data() + r * n, w.data(), n, 1e-5f, want.data() + r * n);
    }
    DeviceArena arena(4 * (x.size() + w.size()) + 1024);
    float* dx = upload(arena, x);
    rms_norm(dx, upload(arena, w), rows, n, 1e-5f, dx);  // in place
    expect_near_relative(download(dx, x.size()), want, 1e-5);
  }
}

TEST(CudaOps, RopeMatchesTheReferenceInBothModes) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  for (const RopeMode mode : {RopeMode::kNormal, RopeMode::kNeox}) {
    ModelConfig c;
    c.head_dim = 64;
    c.n_rot = 48;  // a partial rotation: dims 48..63 untouched
    c.rope_mode = mode;
    c.rope_freq_base = 10000.0f;
    const ops::Rope rope_ref(c, {});
    const int64_t n_tokens = 3;
    const int32_t n_heads = 4;
    auto x = random_values(static_cast<size_t>(n_tokens * n_heads * c.head_dim), 3);
    std::vector<float> cs(static_cast<size_t>(n_tokens * c.n_rot));
    for (int64_t t = 0; t < n_tokens; ++t) rope_ref.angles(100 + 7 * t, cs.data() + t * c.n_rot);
    std::vector<float> want = x;
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int32_t h = 0; h < n_heads; ++h) {
        rope_ref.apply(want.data() + (t * n_heads + h) * c.head_dim, cs.data() + t * c.n_rot);
      }
    }
    DeviceArena arena(4 * (x.size() + cs.size()) + 1024);
    float* dx = upload(arena, x);
    rope(dx, upload(arena, cs), n_tokens, n_heads, c.head_dim, c.n_rot, mode == RopeMode::kNeox);
    expect_near_relative(download(dx, x.size()), want, 1e-6);
  }
}

TEST(CudaOps, SiluMulAndAddMatchTheReference) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  const size_t n = 5632 + 3;
  const auto gate = random_values(n, 4, 4.0f), up = random_values(n, 5);
  std::vector<float> want = gate;
  ops::silu_mul(want.data(), up.data(), static_cast<int64_t>(n));
  DeviceArena arena(8 * n + 1024);
  float* dg = upload(arena, gate);
  const float* du = upload(arena, up);
  silu_mul(dg, du, static_cast<int64_t>(n));
  expect_near_relative(download(dg, n), want, 2e-5);
  add(dg, du, static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i) want[i] += up[i];
  expect_near_relative(download(dg, n), want, 2e-5);
}

TEST(CudaOps, GetRowsMatchesTheDequantizer) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  for (const GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q8_0,
                           GgmlType::Q4_K, GgmlType::Q6_K}) {
    SCOPED_TRACE(type_name(t));
    const int64_t n_out = 50, n_in = 512;
    const TypeKernels& ref = type_kernels(t, Isa::kScalar);
    const auto values = random_values(static_cast<size_t>(n_out * n_in), 6);
    const uint64_t rb = row_bytes(t, static_cast<uint64_t>(n_in)).value();
    std::vector<uint8_t> w(rb * static_cast<uint64_t>(n_out));
    ref.quantize(values.data(), w.data(), n_out * n_in);
    const std::vector<int32_t> ids = {7, 0, 49, 7};
    std::vector<float> want(ids.size() * static_cast<size_t>(n_in));
    for (size_t k = 0; k < ids.size(); ++k) {
      ref.dequantize(w.data() + rb * static_cast<uint64_t>(ids[k]), want.data() + k * n_in, n_in);
    }
    DeviceArena arena(w.size() + 4 * (ids.size() + want.size()) + 1024);
    const uint8_t* dw = upload(arena, w);
    const int32_t* dids = upload(arena, ids);
    auto* dout = static_cast<float*>(arena.allocate(want.size() * sizeof(float)));
    get_rows(t, dw, n_out, n_in, dids, static_cast<int64_t>(ids.size()), dout);
    expect_near_relative(download(dout, want.size()), want, 1e-6);
  }
}

// Refused before any device work, so these hold on any machine.
TEST(CudaOps, BadShapesAndTypesAreRefused) {
  float x = 0.0f;
  EXPECT_THROW(rms_norm(&x, &x, -1, 8, 1e-5f, &x), Error);
  EXPECT_THROW(rope(&x, &x, 1, 4, 64, 65, false, nullptr), Error);   // odd n_rot
  EXPECT_THROW(rope(&x, &x, 1, 4, 64, 128, false, nullptr), Error);  // n_rot > head_dim
  EXPECT_THROW(silu_mul(&x, &x, -1), Error);
  EXPECT_FALSE(get_rows_supports(GgmlType::Q5_K));
  EXPECT_THROW(get_rows(GgmlType::Q5_K, &x, 1, 256, nullptr, 1, &x), Error);
  EXPECT_THROW(get_rows(GgmlType::Q4_0, &x, 1, 33, nullptr, 1, &x), Error);
}

}  // namespace
}  // namespace momentkv::kernels::cuda
