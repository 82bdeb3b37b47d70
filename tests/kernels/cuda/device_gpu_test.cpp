// The device queries and the arena (kernels/cuda/device.h); skipped at run time when the
// machine has no CUDA device (label gpu), except what needs none.
#include "kernels/cuda/device.h"
#include "tests/kernels/cuda/device_vectors.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "core/util/error.h"

namespace momentkv::kernels::cuda {
namespace {

TEST(CudaDevice, CountIsANumberEvenWithoutADriver) {
  EXPECT_GE(device_count(), 0);  // no throw, no abort on a machine without CUDA
}

TEST(CudaDevice, ArenaHandsOutAlignedPiecesWithinItsCapacity) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  const DeviceInfo info = device_info(0);
  EXPECT_FALSE(info.name.empty());
  EXPECT_GT(info.total_bytes, 0u);
  DeviceArena arena(4096);
  void* a = arena.allocate(10);
  void* b = arena.allocate(100, 512);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 512, 0u);
  EXPECT_GE(static_cast<char*>(b) - static_cast<char*>(a), 10);
  EXPECT_THROW(arena.allocate(8192), Error);
  arena.reset();
  EXPECT_EQ(arena.used(), 0u);
  EXPECT_EQ(arena.allocate(4096), a);
}

}  // namespace
}  // namespace momentkv::kernels::cuda
