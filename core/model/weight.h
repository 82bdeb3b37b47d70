// A view of one weight matrix inside the mapped GGUF file.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor/ggml_type.h"

namespace momentkv {

// [n_out rows][n_in elements] of `type`; row r starts at data + r * row_bytes.
struct WeightView {
  std::string name;
  GgmlType type = GgmlType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  uint64_t row_bytes = 0;
  const void* data = nullptr;

  uint64_t n_bytes() const { return row_bytes * static_cast<uint64_t>(n_out); }
};

}  // namespace momentkv
