// The CUDA device and its memory, seen from plain C++ (no CUDA syntax here): whether a device is
// there, what it is, copies, and the one arena all device memory comes from (sized once from
// the memory budget; nothing is allocated per token, and no managed memory is used).
#pragma once

#include <cstdint>
#include <string>

namespace momentkv::kernels::cuda {

// Devices this process can use: 0 when there is none or no driver (never throws).
int device_count();

struct DeviceInfo {
  std::string name;
  int sm_major = 0, sm_minor = 0;
  uint64_t total_bytes = 0;
  int n_sm = 0;
  bool integrated = false;  // shares the system's DRAM (Jetson)
};
// Properties of device `index` (< device_count()). Throws Error on a CUDA error.
DeviceInfo device_info(int index);

// Bytes device `index` can allocate now: on an integrated GPU (Jetson) the system's MemAvailable,
// since CPU and GPU draw from one DRAM and CUDA's free-memory call does not see what the CPU side
// holds; on a discrete GPU, CUDA's free device memory. Throws Error on a CUDA error or when
// /proc/meminfo cannot be read.
uint64_t device_memory_available(int index);

// Host <-> device copies (synchronous) and a wait for all work on the device. Throw Error on a
// CUDA error.
void copy_to_device(void* dst, const void* src, uint64_t bytes);
void copy_to_host(void* dst, const void* src, uint64_t bytes);
// Device-to-device copy on the default stream, without waiting (the bandwidth benchmark's
// reference: what the memory can do).
void copy_on_device(void* dst, const void* src, uint64_t bytes);
void synchronize();

// The device's memory bandwidth as device-to-device copies of `bytes` measure it (read + write
// bytes per second, best of `runs` after two warm-ups), in a temporary arena of 2 x bytes: the
// limit the kernels' GB/s are read against. Throws Error on a CUDA error.
double measure_copy_bandwidth(uint64_t bytes, int runs = 10);

// The alignment of every piece DeviceArena hands out by default, and `bytes` rounded up to it (what
// a piece takes of an arena, for sizing one).
inline constexpr uint64_t kDeviceAlign = 256;
inline constexpr uint64_t device_aligned(uint64_t bytes) {
  return (bytes + kDeviceAlign - 1) / kDeviceAlign * kDeviceAlign;
}

// A stream of its own on the current device (non-blocking: it does not wait for the legacy
// default stream), e.g. for work recorded as a CUDA graph, which the default stream cannot hold.
class DeviceStream {
 public:
  DeviceStream();  // throws Error on a CUDA error
  ~DeviceStream();
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;

  void* get() const { return stream_; }  // a cudaStream_t
  void synchronize();                    // waits for its work; throws Error on a CUDA error
  bool capturing() const;                // whether a graph capture is recording it

 private:
  void* stream_ = nullptr;
};

// One device allocation of `capacity` bytes handed out in aligned pieces, released together.
class DeviceArena {
 public:
  // Allocates the arena on the current device; throws Error, with the numbers, when capacity
  // exceeds device_memory_available() or the allocation fails.
  explicit DeviceArena(uint64_t capacity);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // The next `bytes` of the arena at a multiple of `align` (a power of two); throws Error when
  // the arena has no room left (the budget was sized too small: a broken invariant).
  void* allocate(uint64_t bytes, uint64_t align = kDeviceAlign);
  // Forgets every piece (the memory stays allocated).
  void reset() { used_ = 0; }
  uint64_t used() const { return used_; }
  uint64_t capacity() const { return capacity_; }

 private:
  void* base_ = nullptr;
  uint64_t capacity_ = 0, used_ = 0;
};

}  // namespace momentkv::kernels::cuda
