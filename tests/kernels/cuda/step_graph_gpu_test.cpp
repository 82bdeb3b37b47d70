// StepGraph (kernels/cuda/step_graph.h): the recorded work runs once per run(), with each run's
// arguments; a run with the same shape of work updates the executable graph in place; a run whose
// recording throws leaves the stream out of capture with none of its work done. Skipped at run
// time without a device.
#include "kernels/cuda/step_graph.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/util/error.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/elementwise.h"
#include "tests/kernels/cuda/device_vectors.h"

namespace momentkv::kernels::cuda {
namespace {

using testing::download;
using testing::random_values;
using testing::upload;

constexpr size_t kN = 1000;

TEST(StepGraph, RunsEachStepsWorkWithItsArguments) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  const auto x1 = random_values(kN, 1), x2 = random_values(kN, 2);
  DeviceArena arena(4 * 4 * kN + 4096);
  float* y = upload(arena, std::vector<float>(kN, 0.0f));
  const float* d1 = upload(arena, x1);
  const float* d2 = upload(arena, x2);
  DeviceStream stream;
  StepGraph graph;
  graph.run(stream.get(), [&] { add(y, d1, static_cast<int64_t>(kN), stream.get()); });
  graph.run(stream.get(), [&] { add(y, d2, static_cast<int64_t>(kN), stream.get()); });
  stream.synchronize();
  std::vector<float> want(kN);
  for (size_t i = 0; i < kN; ++i) want[i] = x1[i] + x2[i];
  EXPECT_EQ(download(y, kN), want);
  EXPECT_EQ(graph.runs(), 2);
  EXPECT_EQ(graph.updates(), 1);  // the second step differs in its arguments only

  // Another shape of work (two kernels, fewer blocks): instantiated anew or updated, either way
  // run with its own arguments.
  graph.run(stream.get(), [&] {
    add(y, d1, 300, stream.get());
    add(y, d1, 300, stream.get());
  });
  stream.synchronize();
  for (size_t i = 0; i < 300; ++i) want[i] += 2.0f * x1[i];
  EXPECT_EQ(download(y, kN), want);
  EXPECT_EQ(graph.runs(), 3);
}

TEST(StepGraph, AFailedRecordingRunsNothingAndEndsTheCapture) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  const auto x = random_values(kN, 3);
  DeviceArena arena(2 * 4 * kN + 4096);
  float* y = upload(arena, std::vector<float>(kN, 0.0f));
  const float* dx = upload(arena, x);
  DeviceStream stream;
  StepGraph graph;
  EXPECT_THROW(graph.run(stream.get(),
                         [&] {
                           add(y, dx, static_cast<int64_t>(kN), stream.get());
                           throw Error("a launch failed");
                         }),
               Error);
  EXPECT_FALSE(stream.capturing());
  stream.synchronize();
  EXPECT_EQ(download(y, kN), std::vector<float>(kN, 0.0f));
  EXPECT_EQ(graph.runs(), 0);
  // The stream and the graph still work.
  graph.run(stream.get(), [&] { add(y, dx, static_cast<int64_t>(kN), stream.get()); });
  stream.synchronize();
  EXPECT_EQ(download(y, kN), x);
}

}  // namespace
}  // namespace momentkv::kernels::cuda
