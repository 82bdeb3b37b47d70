#include "core/kv/kv_type.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "core/tensor/fp16.h"
#include "core/util/error.h"

namespace momentkv {

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::kF32:
      return "f32";
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
  }
  return "?";
}

std::optional<KvType> parse_kv_type(const std::string& s) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (l == "f32") return KvType::kF32;
  if (l == "f16") return KvType::kF16;
  if (l == "q8_0") return KvType::kQ8_0;
  return std::nullopt;
}

uint64_t kv_row_bytes(KvType t, int32_t head_dim) {
  switch (t) {
    case KvType::kF32:
      return 4ull * static_cast<uint64_t>(head_dim);
    case KvType::kF16:
      return 2ull * static_cast<uint64_t>(head_dim);
    case KvType::kQ8_0:
      check(head_dim % 32 == 0,
            "KV type q8_0 needs head_dim to be a multiple of 32, the model has " +
                std::to_string(head_dim) + " (use f16 or f32)");
      return static_cast<uint64_t>(head_dim / 32) * 34;
  }
  return 0;
}

void kv_encode_row(KvType t, const float* src, void* dst, int32_t head_dim) {
  switch (t) {
    case KvType::kF32:
      std::memcpy(dst, src, 4 * static_cast<size_t>(head_dim));
      return;
    case KvType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int32_t i = 0; i < head_dim; ++i) d[i] = fp32_to_fp16(src[i]);
      return;
    }
    case KvType::kQ8_0: {
      auto* d = static_cast<uint8_t*>(dst);
      for (int32_t b = 0; b < head_dim / 32; ++b, d += 34) {
        const float* x = src + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float scale = amax / 127.0f;
        const uint16_t h = fp32_to_fp16(scale);
        std::memcpy(d, &h, 2);
        const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        for (int i = 0; i < 32; ++i) {
          d[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[i] * inv)));
        }
      }
      return;
    }
  }
}

void kv_decode_row(KvType t, const void* src, float* dst, int32_t head_dim) {
  switch (t) {
    case KvType::kF32:
      std::memcpy(dst, src, 4 * static_cast<size_t>(head_dim));
      return;
    case KvType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int32_t i = 0; i < head_dim; ++i) dst[i] = fp16_to_fp32(s[i]);
      return;
    }
    case KvType::kQ8_0: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (int32_t b = 0; b < head_dim / 32; ++b, s += 34) {
        uint16_t h;
        std::memcpy(&h, s, 2);
        const float d = fp16_to_fp32(h);
        for (int i = 0; i < 32; ++i) {
          dst[32 * b + i] = d * static_cast<float>(static_cast<int8_t>(s[2 + i]));
        }
      }
      return;
    }
  }
}

}  // namespace momentkv
