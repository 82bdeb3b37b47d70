// A hand-crafted GGUF image with one string kv and one F32 [4][2] tensor, every header field
// settable, so a test (or the fuzz seed generator) can break exactly one of them (RELIABILITY.md
// §4.3 cases).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/gguf/gguf_writer.h"

namespace momentkv::test {

inline constexpr uint64_t kTrueLength = std::numeric_limits<uint64_t>::max();

struct CraftedGguf {
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  uint64_t n_tensors = 1;
  uint64_t n_kv = 1;
  std::string key = "general.architecture";
  uint64_t key_len = kTrueLength;  // kTrueLength: the key's real length
  uint32_t value_type = 8;         // string
  std::string value = "llama";
  uint64_t value_len = kTrueLength;
  std::string tensor_name = "w";
  uint32_t n_dims = 2;
  std::vector<uint64_t> ne = {4, 2};
  uint32_t ggml_type = 0;  // F32
  uint64_t offset = 0;
  size_t data_bytes = 32;
  size_t truncate_to = 0;  // 0: keep everything

  std::vector<uint8_t> bytes() const {
    ByteWriter w;
    w.u32(magic);
    w.u32(version);
    w.u64(n_tensors);
    w.u64(n_kv);
    w.u64(key_len == kTrueLength ? key.size() : key_len);
    w.raw(key.data(), key.size());
    w.u32(value_type);
    w.u64(value_len == kTrueLength ? value.size() : value_len);
    w.raw(value.data(), value.size());
    w.str(tensor_name);
    w.u32(n_dims);
    for (uint64_t d : ne) w.u64(d);
    w.u32(ggml_type);
    w.u64(offset);
    w.pad_to(32);
    const std::vector<uint8_t> data(data_bytes, 0);
    w.raw(data.data(), data.size());
    auto b = w.bytes();
    if (truncate_to) b.resize(truncate_to);
    return b;
  }
};

// A GGUF header with no tensors and one kv, general.alignment, of GGUF value type `type` (4 u32,
// 5 i32, 10 u64) holding `value`.
inline std::vector<uint8_t> file_with_alignment(uint32_t type, uint64_t value) {
  ByteWriter w;
  w.u32(0x46554747);
  w.u32(3);
  w.u64(0);
  w.u64(1);
  w.str("general.alignment");
  w.u32(type);
  if (type == 4) w.u32(static_cast<uint32_t>(value));
  if (type == 5) w.i32(static_cast<int32_t>(value));
  if (type == 10) w.u64(value);
  return w.bytes();
}

}  // namespace momentkv::test
