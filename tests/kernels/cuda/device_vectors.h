// Test helpers for the CUDA kernels: host vectors to and from a DeviceArena, and a skip when the
// machine has no device (the gpu tests build everywhere nvcc is found and skip at run time).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/device.h"

namespace momentkv::kernels::cuda::testing {

#define MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE() \
  if (::momentkv::kernels::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"

template <class T>
T* upload(DeviceArena& arena, const std::vector<T>& host) {
  auto* p = static_cast<T*>(arena.allocate(host.size() * sizeof(T)));
  copy_to_device(p, host.data(), host.size() * sizeof(T));
  return p;
}

template <class T>
std::vector<T> download(const T* device, size_t n) {
  std::vector<T> host(n);
  copy_to_host(host.data(), device, n * sizeof(T));
  return host;
}

inline std::vector<float> random_values(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace momentkv::kernels::cuda::testing
