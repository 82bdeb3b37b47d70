// The device queries and the arena (kernels/cuda/device.h); skipped at run time when the
// machine has no CUDA device (label gpu), except what needs none.
#include "kernels/cuda/device.h"
#include "tests/kernels/cuda/device_vectors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

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

// An arena larger than what the device can give is refused with the numbers, not left to fail
// later (on Jetson the limit is MemAvailable: the GPU shares the system's DRAM).
TEST(CudaDevice, ArenaLargerThanTheAvailableMemoryIsRefused) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  const uint64_t available = device_memory_available(0);
  EXPECT_GT(available, 0u);
  try {
    DeviceArena arena(available + (uint64_t{1} << 30));
    FAIL() << "an arena larger than the available memory was allocated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace momentkv::kernels::cuda
