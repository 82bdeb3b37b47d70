// Element types of the KV cache: one row is one head's key or value vector (head_dim elements).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace momentkv {

enum class KvType { kF32, kF16, kQ8_0 };

const char* kv_type_name(KvType t);
// "f32" / "f16" / "q8_0" (case-insensitive); nullopt otherwise.
std::optional<KvType> parse_kv_type(const std::string& s);
// Bytes of one row of head_dim elements. Throws Error for q8_0 when head_dim % 32 != 0.
uint64_t kv_row_bytes(KvType t, int32_t head_dim);
// Encodes head_dim floats into one row (round-to-nearest; q8_0: per-32 block scale amax/127).
void kv_encode_row(KvType t, const float* src, void* dst, int32_t head_dim);
// Decodes one row into head_dim floats.
void kv_decode_row(KvType t, const void* src, float* dst, int32_t head_dim);

}  // namespace momentkv
