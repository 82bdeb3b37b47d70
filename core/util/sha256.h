// SHA-256 (FIPS 180-4), incremental. Used to name model files in telemetry.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace momentkv {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  // The digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> finish();
  // Lower-case hex of finish().
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buffered_ = 0;
  uint64_t total_ = 0;
};

}  // namespace momentkv
