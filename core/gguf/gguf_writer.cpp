#include "core/gguf/gguf_writer.h"

#include <cstring>
#include <fstream>

#include "core/util/error.h"

namespace momentkv {

namespace {
template <typename T>
std::vector<uint8_t> encode(T v) {
  std::vector<uint8_t> b(sizeof v);
  std::memcpy(b.data(), &v, sizeof v);
  return b;
}
template <typename T>
std::vector<uint8_t> encode_array(GgufType elem, const std::vector<T>& v) {
  ByteWriter w;
  w.u32(static_cast<uint32_t>(elem));
  w.u64(v.size());
  if (!v.empty()) w.raw(v.data(), v.size() * sizeof(T));
  return std::move(w.bytes());
}
}  // namespace

void GgufWriter::put(std::string key, GgufType type, std::vector<uint8_t> payload) {
  for (auto& kv : kvs_) {
    if (kv.key == key) {
      kv.type = type;
      kv.payload = std::move(payload);
      return;
    }
  }
  kvs_.push_back({std::move(key), type, std::move(payload)});
}

void GgufWriter::set_u32(std::string key, uint32_t v) {
  put(std::move(key), GgufType::U32, encode(v));
}
void GgufWriter::set_i32(std::string key, int32_t v) {
  put(std::move(key), GgufType::I32, encode(v));
}
void GgufWriter::set_u64(std::string key, uint64_t v) {
  put(std::move(key), GgufType::U64, encode(v));
}
void GgufWriter::set_f32(std::string key, float v) {
  put(std::move(key), GgufType::F32, encode(v));
}
void GgufWriter::set_bool(std::string key, bool v) {
  put(std::move(key), GgufType::Bool, encode(static_cast<uint8_t>(v ? 1 : 0)));
}
void GgufWriter::set_string(std::string key, std::string v) {
  ByteWriter w;
  w.str(v);
  put(std::move(key), GgufType::String, std::move(w.bytes()));
}
void GgufWriter::set_f32_array(std::string key, std::vector<float> v) {
  put(std::move(key), GgufType::Array, encode_array(GgufType::F32, v));
}
void GgufWriter::set_i32_array(std::string key, std::vector<int32_t> v) {
  put(std::move(key), GgufType::Array, encode_array(GgufType::I32, v));
}
void GgufWriter::set_string_array(std::string key, std::vector<std::string> v) {
  ByteWriter w;
  w.u32(static_cast<uint32_t>(GgufType::String));
  w.u64(v.size());
  for (const auto& s : v) w.str(s);
  put(std::move(key), GgufType::Array, std::move(w.bytes()));
}

void GgufWriter::copy_value(std::string key, const GgufValue& v) {
  ByteWriter w;
  switch (v.type) {
    case GgufType::String:
      w.str(v.str);
      break;
    case GgufType::Array:
      w.u32(static_cast<uint32_t>(v.elem_type));
      w.u64(v.count);
      if (v.elem_type == GgufType::String) {
        for (auto s : v.strs) w.str(s);
      } else {
        w.raw(v.raw, v.count * gguf_scalar_size(v.elem_type));
      }
      break;
    case GgufType::U8:
      w.u8(static_cast<uint8_t>(v.u));
      break;
    case GgufType::Bool:
      w.u8(static_cast<uint8_t>(v.u));
      break;
    case GgufType::I8:
      w.u8(static_cast<uint8_t>(static_cast<int8_t>(v.i)));
      break;
    case GgufType::U16:
      w.u16(static_cast<uint16_t>(v.u));
      break;
    case GgufType::I16:
      w.u16(static_cast<uint16_t>(static_cast<int16_t>(v.i)));
      break;
    case GgufType::U32:
      w.u32(static_cast<uint32_t>(v.u));
      break;
    case GgufType::I32:
      w.i32(static_cast<int32_t>(v.i));
      break;
    case GgufType::U64:
      w.u64(v.u);
      break;
    case GgufType::I64:
      w.i64(v.i);
      break;
    case GgufType::F32:
      w.f32(static_cast<float>(v.f));
      break;
    case GgufType::F64:
      w.f64(v.f);
      break;
  }
  put(std::move(key), v.type, std::move(w.bytes()));
}

void GgufWriter::add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type,
                            const void* data, size_t n_bytes) {
  check(!ne.empty() && ne.size() <= 4, "tensor '" + name + "' must have 1..4 dims");
  int64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
  const auto rb = row_bytes(type, static_cast<uint64_t>(ne[0]));
  check(rb.has_value(), "tensor '" + name + "' row length " + std::to_string(ne[0]) +
                            " is not a multiple of the " + type_name(type) + " block");
  check(*rb * static_cast<uint64_t>(rows) == n_bytes,
        "tensor '" + name + "' has " + std::to_string(n_bytes) + " bytes, expected " +
            std::to_string(*rb * static_cast<uint64_t>(rows)));
  const auto* p = static_cast<const uint8_t*>(data);
  tensors_.push_back({std::move(name), std::move(ne), type, std::vector<uint8_t>(p, p + n_bytes)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  ByteWriter w;
  w.u32(0x46554747);
  w.u32(3);
  w.u64(tensors_.size());
  const bool has_align = alignment_ != 32;
  w.u64(kvs_.size() + (has_align ? 1 : 0));
  if (has_align) {
    w.str("general.alignment");
    w.u32(static_cast<uint32_t>(GgufType::U32));
    w.u32(alignment_);
  }
  for (const auto& kv : kvs_) {
    w.str(kv.key);
    w.u32(static_cast<uint32_t>(kv.type));
    w.raw(kv.payload.data(), kv.payload.size());
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    w.str(t.name);
    w.u32(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) w.u64(static_cast<uint64_t>(d));
    w.u32(static_cast<uint32_t>(t.type));
    w.u64(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  w.pad_to(alignment_);
  for (const auto& t : tensors_) {
    w.raw(t.data.data(), t.data.size());
    w.pad_to(alignment_);
  }
  return std::move(w.bytes());
}

void GgufWriter::write(const std::string& path) const {
  const auto bytes = to_bytes();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  check(out.good(), "cannot create " + path);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.flush();
  check(out.good(), "cannot write " + path + " (disk full?)");
}

}  // namespace momentkv
