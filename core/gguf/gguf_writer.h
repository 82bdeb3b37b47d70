// Writes GGUF v3 files: used by the converters, the quantizer, `synth`, and tests that craft valid
// and malformed files.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/gguf/gguf_value.h"
#include "core/tensor/ggml_type.h"

namespace momentkv {

// Little-endian byte appender, also used directly by tests to craft malformed files.
class ByteWriter {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i32(int32_t v) { raw(&v, 4); }
  void i64(int64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void f64(double v) { raw(&v, 8); }
  void str(std::string_view s) {  // u64 length + bytes
    u64(s.size());
    raw(s.data(), s.size());
  }
  void raw(const void* p, size_t n) {
    if (n == 0) return;
    const size_t old = bytes_.size();
    bytes_.resize(old + n);
    std::memcpy(bytes_.data() + old, p, n);
  }
  void pad_to(size_t align) {
    while (bytes_.size() % align) bytes_.push_back(0);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

class GgufWriter {
 public:
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_f32_array(std::string key, std::vector<float> v);
  void set_i32_array(std::string key, std::vector<int32_t> v);
  void set_string_array(std::string key, std::vector<std::string> v);
  // Copies a value read from another file (scalars and arrays of any element type).
  void copy_value(std::string key, const GgufValue& v);

  // Adds a tensor; `data` must hold row_bytes(type, ne[0]) * rows bytes. ne[0] is the row length.
  void add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, const void* data,
                  size_t n_bytes);

  void set_alignment(uint32_t a) { alignment_ = a; }
  // The complete file image.
  std::vector<uint8_t> to_bytes() const;
  // Writes the image to `path` (throws Error on I/O failure).
  void write(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    GgufType type;
    std::vector<uint8_t> payload;  // encoded value without the type tag
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    std::vector<uint8_t> data;
  };
  void put(std::string key, GgufType type, std::vector<uint8_t> payload);
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace momentkv
