#include "core/tensor/ggml_type.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/util/checked_math.h"

namespace momentkv {

namespace {
struct Entry {
  uint32_t id;
  TypeInfo info;
};
constexpr std::array<Entry, 15> kTypes{{
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},
    {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},
    {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},
    {9, {"Q8_1", 32, 36, false}},
    {10, {"Q2_K", 256, 84, false}},
    {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, true}},
    {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},
    {15, {"Q8_K", 256, 292, false}},
    {30, {"BF16", 1, 2, true}},
}};
}  // namespace

std::optional<TypeInfo> type_info(uint32_t type_id) {
  for (const auto& e : kTypes) {
    if (e.id == type_id) return e.info;
  }
  return std::nullopt;
}

TypeInfo type_info(GgmlType t) {
  return *type_info(static_cast<uint32_t>(t));
}

std::string type_name(uint32_t type_id) {
  auto info = type_info(type_id);
  return info ? info->name : "type#" + std::to_string(type_id);
}

std::optional<GgmlType> parse_type_name(const std::string& name) {
  std::string up = name;
  std::transform(up.begin(), up.end(), up.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (const auto& e : kTypes) {
    if (up == e.info.name) return static_cast<GgmlType>(e.id);
  }
  return std::nullopt;
}

std::optional<uint64_t> row_bytes(GgmlType t, uint64_t n_elems) {
  const TypeInfo info = type_info(t);
  if (n_elems % info.block_elems != 0) return std::nullopt;
  return checked_mul(n_elems / info.block_elems, info.block_bytes);
}

}  // namespace momentkv
