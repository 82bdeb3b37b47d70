// One GGUF metadata value, viewed in place in the (memory-mapped) file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace momentkv {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// "u32", "string", ...; "type#N" for an unknown id.
std::string gguf_type_name(uint32_t t);
// Byte size of a fixed-size scalar type; 0 for String/Array/unknown.
uint64_t gguf_scalar_size(GgufType t);

struct GgufValue {
  GgufType type = GgufType::U8;
  // Scalars: the value widened to the fitting member.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0.0;
  std::string_view str;  // String
  // Array: element type, count, and either the raw little-endian elements or the strings.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strs;

  // Integer value of any integer or bool scalar; nullopt otherwise (or if it does not fit).
  std::optional<int64_t> as_int() const;
  // Value of any numeric scalar as a double; nullopt otherwise.
  std::optional<double> as_float() const;
  // One-line human-readable rendering (arrays abbreviated).
  std::string to_string(size_t max_elems = 8) const;
};

struct GgufKv {
  std::string key;
  GgufValue value;
};

}  // namespace momentkv
