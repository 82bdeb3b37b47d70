// Device queries, copies and the arena (device.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/util/error.h"
#include "core/util/system_memory.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" / "no driver" error
    return 0;
  }
  return n;
}

DeviceInfo device_info(int index) {
  cudaDeviceProp p{};
  check_cuda(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
  DeviceInfo info;
  info.name = p.name;
  info.sm_major = p.major;
  info.sm_minor = p.minor;
  info.total_bytes = p.totalGlobalMem;
  info.n_sm = p.multiProcessorCount;
  info.integrated = p.integrated != 0;
  return info;
}

uint64_t device_memory_available(int index) {
  if (device_info(index).integrated) {
    const SystemMemory memory = read_system_memory();
    check(memory.mem_available.has_value(), "cannot read MemAvailable from /proc/meminfo");
    return *memory.mem_available;
  }
  int current = 0;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  check_cuda(cudaSetDevice(index), "cudaSetDevice");
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
  check_cuda(cudaSetDevice(current), "cudaSetDevice");
  check_cuda(status, "cudaMemGetInfo");
  return free_bytes;
}

void copy_to_device(void* dst, const void* src, uint64_t bytes) {
  check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to the device");
}

void copy_to_host(void* dst, const void* src, uint64_t bytes) {
  check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
}

void copy_on_device(void* dst, const void* src, uint64_t bytes) {
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice),
             "cudaMemcpyAsync on the device");
}

void synchronize() {
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

double measure_copy_bandwidth(uint64_t bytes, int runs) {
  DeviceArena arena(2 * bytes + 512);
  void* a = arena.allocate(bytes);
  void* b = arena.allocate(bytes);
  check_cuda(cudaMemset(a, 1, bytes), "cudaMemset");
  for (int i = 0; i < 2; ++i) copy_on_device(b, a, bytes);
  synchronize();
  double best = 0.0;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    copy_on_device(b, a, bytes);
    synchronize();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * static_cast<double>(bytes) / s);
  }
  return best;
}

DeviceStream::DeviceStream() {
  cudaStream_t s = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = s;
}

DeviceStream::~DeviceStream() {
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

void DeviceStream::synchronize() {
  check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "cudaStreamSynchronize");
}

bool DeviceStream::capturing() const {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream_), &status),
             "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

DeviceArena::DeviceArena(uint64_t capacity) : capacity_(capacity) {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const uint64_t available = device_memory_available(device);
  check(capacity <= available,
        "a device arena of " + std::to_string(capacity) + " bytes does not fit: device " +
            std::to_string(device) + " has " + std::to_string(available) + " bytes available" +
            (device_info(device).integrated ? " (MemAvailable: the GPU shares the system's DRAM)"
                                            : " (CUDA free memory)"));
  check_cuda(cudaMalloc(&base_, capacity),
             "cudaMalloc of a " + std::to_string(capacity) + "-byte device arena");
}

DeviceArena::~DeviceArena() {
  cudaFree(base_);
}

void* DeviceArena::allocate(uint64_t bytes, uint64_t align) {
  check(align != 0 && (align & (align - 1)) == 0,
        "DeviceArena: alignment " + std::to_string(align) + " is not a power of two");
  // Aligned as an address (cudaMalloc itself only promises 256 bytes).
  const auto base = reinterpret_cast<uintptr_t>(base_);
  const uint64_t start = ((base + used_ + align - 1) & ~(align - 1)) - base;
  check(start <= capacity_ && bytes <= capacity_ - start,
        "DeviceArena: " + std::to_string(bytes) + " bytes do not fit (" + std::to_string(used_) +
            " of " + std::to_string(capacity_) + " used)");
  used_ = start + bytes;
  return static_cast<char*>(base_) + start;
}

}  // namespace momentkv::kernels::cuda
