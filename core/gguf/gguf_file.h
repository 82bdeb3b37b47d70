// A validated, memory-mapped GGUF v2/v3 file: metadata, tensor infos and tensor data.
// Every count, length, size and offset is checked against the file size with overflow-safe
// arithmetic before use; a bad file throws GgufError naming the field and the value.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/gguf/gguf_error.h"
#include "core/gguf/gguf_value.h"
#include "core/tensor/ggml_type.h"

namespace momentkv {

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the fastest-varying (row length)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  int64_t n_rows() const;  // product of ne[1..]
};

// Limits applied by the validator (RELIABILITY.md §4.4).
struct GgufLimits {
  uint64_t max_tensors = 1u << 20;
  uint64_t max_kv = 1u << 20;
  uint64_t max_key_len = 64 * 1024;
  uint64_t max_string_len = 1024 * 1024 * 16;
  uint64_t max_array_len = 1ull << 28;
  uint64_t max_alignment = 64 * 1024;
};

class GgufFile {
 public:
  // Maps and validates `path`. Throws GgufError.
  static GgufFile open(const std::string& path, const GgufLimits& limits = {});
  // Validates an in-memory image (tests, fuzzing). The bytes are owned by the result.
  static GgufFile from_bytes(std::vector<uint8_t> bytes, const GgufLimits& limits = {});

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }
  // The whole file (file_size() bytes).
  const uint8_t* bytes() const { return base_; }

  const std::vector<GgufKv>& kvs() const { return kvs_; }
  // The value for `key`, or nullptr.
  const GgufValue* find(std::string_view key) const;

  // Typed getters: nullopt when absent; GgufError(kWrongType) when present with another type.
  // Integer getters accept any integer type whose value fits.
  std::optional<uint32_t> get_u32(std::string_view key) const;
  std::optional<uint64_t> get_u64(std::string_view key) const;
  std::optional<int64_t> get_i64(std::string_view key) const;
  std::optional<float> get_f32(std::string_view key) const;  // any float type
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // Arrays; the element type must match exactly (F32 / I32 / String), else kWrongType.
  std::optional<std::vector<float>> get_f32_array(std::string_view key) const;
  std::optional<std::vector<int32_t>> get_i32_array(std::string_view key) const;
  const std::vector<std::string_view>* get_string_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // The tensor named `name`, or nullptr.
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // Pointer to a tensor's bytes (n_bytes long, inside the mapping).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const {
    return base_ + data_offset_ + t.offset;
  }

 private:
  GgufFile();
  void parse(const GgufLimits& limits);

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;  // mmap'd region (size_ bytes), or null for from_bytes
  std::vector<uint8_t> owned_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace momentkv
