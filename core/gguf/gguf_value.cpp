#include "core/gguf/gguf_value.h"

#include <cstring>
#include <limits>
#include <sstream>

namespace momentkv {

std::string gguf_type_name(uint32_t t) {
  static const char* const kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  if (t < sizeof(kNames) / sizeof(kNames[0])) return kNames[t];
  return "type#" + std::to_string(t);
}

uint64_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::Bool:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    default:
      return 0;
  }
}

std::optional<int64_t> GgufValue::as_int() const {
  switch (type) {
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::Bool:
      return static_cast<int64_t>(u);
    case GgufType::U64:
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(u);
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      return i;
    default:
      return std::nullopt;
  }
}

std::optional<double> GgufValue::as_float() const {
  if (type == GgufType::F32 || type == GgufType::F64) return f;
  if (type == GgufType::U64) return static_cast<double>(u);
  if (auto v = as_int()) return static_cast<double>(*v);
  return std::nullopt;
}

namespace {
std::string element_to_string(GgufType t, const uint8_t* p) {
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (t) {
    case GgufType::U8:
      return std::to_string(load(uint8_t{}));
    case GgufType::I8:
      return std::to_string(load(int8_t{}));
    case GgufType::U16:
      return std::to_string(load(uint16_t{}));
    case GgufType::I16:
      return std::to_string(load(int16_t{}));
    case GgufType::U32:
      return std::to_string(load(uint32_t{}));
    case GgufType::I32:
      return std::to_string(load(int32_t{}));
    case GgufType::F32:
      return std::to_string(load(float{}));
    case GgufType::Bool:
      return load(uint8_t{}) ? "true" : "false";
    case GgufType::U64:
      return std::to_string(load(uint64_t{}));
    case GgufType::I64:
      return std::to_string(load(int64_t{}));
    case GgufType::F64:
      return std::to_string(load(double{}));
    default:
      return "?";
  }
}
}  // namespace

std::string GgufValue::to_string(size_t max_elems) const {
  std::ostringstream os;
  switch (type) {
    case GgufType::String:
      os << '"' << str.substr(0, 200) << (str.size() > 200 ? "...\"" : "\"");
      break;
    case GgufType::Array: {
      os << gguf_type_name(static_cast<uint32_t>(elem_type)) << "[" << count << "] [";
      const uint64_t n = count < max_elems ? count : max_elems;
      for (uint64_t k = 0; k < n; ++k) {
        if (k) os << ", ";
        if (elem_type == GgufType::String) {
          os << '"' << strs[k].substr(0, 40) << '"';
        } else {
          os << element_to_string(elem_type, raw + k * gguf_scalar_size(elem_type));
        }
      }
      if (count > n) os << ", ...";
      os << "]";
      break;
    }
    case GgufType::Bool:
      os << (u ? "true" : "false");
      break;
    case GgufType::F32:
    case GgufType::F64:
      os << f;
      break;
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      os << i;
      break;
    default:
      os << u;
      break;
  }
  return os.str();
}

}  // namespace momentkv
