// ggml tensor element types as stored in GGUF files, with their block geometry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace momentkv {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TypeInfo {
  const char* name;
  uint32_t block_elems;  // elements per block
  uint32_t block_bytes;  // bytes per block
  bool supported;        // momentkv has kernels for it
};

// Geometry of a type id read from a file, or nullopt if the id is unknown.
std::optional<TypeInfo> type_info(uint32_t type_id);

// Geometry of a known type (never fails).
TypeInfo type_info(GgmlType t);

// "Q4_0" etc.; "type#N" for unknown ids.
std::string type_name(uint32_t type_id);
inline std::string type_name(GgmlType t) {
  return type_name(static_cast<uint32_t>(t));
}

// Parses "q4_0"/"Q4_0"/"f16"...; nullopt if unknown.
std::optional<GgmlType> parse_type_name(const std::string& name);

// Bytes of a row of n elements: n must be a multiple of the block size; nullopt on overflow or
// a partial block.
std::optional<uint64_t> row_bytes(GgmlType t, uint64_t n_elems);

// Block sizes in elements.
inline constexpr int kQK = 32;    // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1
inline constexpr int kQKK = 256;  // K-quants

}  // namespace momentkv
