// GGUF reader: valid files round-trip through the writer; every malformed case of
// RELIABILITY.md §4.3 is rejected with its specific error code.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "tests/support/crafted_gguf.h"

namespace momentkv {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

using Craft = test::CraftedGguf;

GgufErrc error_of(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::from_bytes(bytes);
  } catch (const GgufError& e) {
    return e.code();
  }
  ADD_FAILURE() << "file was accepted";
  return GgufErrc::kIo;
}

std::string message_of(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::from_bytes(bytes);
  } catch (const GgufError& e) {
    return e.what();
  }
  return "";
}

TEST(GgufFile, CraftedBaseIsValid) {
  auto f = GgufFile::from_bytes(Craft{}.bytes());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].n_bytes, 32u);
  EXPECT_EQ(f.tensors()[0].n_rows(), 2);
}

TEST(GgufFile, WriterRoundTrip) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 5);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_f32_array("tokenizer.ggml.scores", {1.f, 2.f, 3.f});
  w.set_i32_array("tokenizer.ggml.token_type", {1, 3, 6});
  w.set_string_array("tokenizer.ggml.tokens", {"a", "<s>", "<0x0A>"});
  std::vector<float> data(64 * 3);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  w.add_tensor("blk.0.attn_q.weight", {64, 3}, GgmlType::F32, data.data(), data.size() * 4);
  w.set_alignment(64);
  auto f = GgufFile::from_bytes(w.to_bytes());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_u32("llama.block_count"), 5u);
  EXPECT_FLOAT_EQ(*f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(*f.get_f32_array("tokenizer.ggml.scores"), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(*f.get_i32_array("tokenizer.ggml.token_type"), (std::vector<int32_t>{1, 3, 6}));
  EXPECT_EQ((*f.get_string_array("tokenizer.ggml.tokens"))[2], "<0x0A>");
  const auto* t = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  float v;
  std::memcpy(&v, f.tensor_data(*t) + 4 * 100, 4);
  EXPECT_EQ(v, 100.f);
  EXPECT_FALSE(f.get_u32("missing").has_value());
}

TEST(GgufFile, TypedGettersRejectWrongTypes) {
  GgufWriter w;
  w.set_string("s", "x");
  w.set_i32("neg", -1);
  w.set_u64("big", 1ull << 40);
  auto f = GgufFile::from_bytes(w.to_bytes());
  EXPECT_THROW(f.get_u32("s"), GgufError);
  EXPECT_THROW(f.get_u32("neg"), GgufError);
  EXPECT_THROW(f.get_u32("big"), GgufError);
  EXPECT_EQ(f.get_u64("big"), 1ull << 40);
  EXPECT_THROW(f.get_f32_array("s"), GgufError);
  EXPECT_THROW(f.get_string_array("neg"), GgufError);
}

TEST(GgufFile, HeaderErrors) {
  Craft c;
  c.magic = 0x46554746;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadMagic);
  c = {};
  c.version = 1;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadVersion);
  c.version = 4;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadVersion);
  EXPECT_EQ(error_of({0x47, 0x47}), GgufErrc::kTruncated);
}

TEST(GgufFile, CountOverflowsCve2024_23605) {
  for (uint64_t n : {kMax, uint64_t{1} << 63, uint64_t{1000000}}) {
    Craft c;
    c.n_kv = n;
    EXPECT_EQ(error_of(c.bytes()), GgufErrc::kTooMany) << n;
    c = {};
    c.n_tensors = n;
    EXPECT_EQ(error_of(c.bytes()), GgufErrc::kTooMany) << n;
  }
  Craft c;  // just below SIZE_MAX / sizeof(info) (issue #15711)
  c.n_tensors = kMax / 64 - 1;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kTooMany);
}

TEST(GgufFile, StringLengths) {
  Craft c;
  c.key_len = kMax;
  c.key_len = kMax - 1;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kStringTooLong);
  c = {};
  c.value_len = kMax;
  c.value_len = kMax - 2;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kStringTooLong);
  c = {};
  c.value_len = 1000;  // fits the cap but not the file
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kTruncated);
}

TEST(GgufFile, ValueTypes) {
  Craft c;
  c.value_type = 13;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadValueType);
  c.value_type = 0xffffffff;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadValueType);
}

std::vector<uint8_t> file_with_array(uint32_t elem_type, uint64_t count, size_t payload) {
  ByteWriter w;
  w.u32(0x46554747);
  w.u32(3);
  w.u64(0);
  w.u64(1);
  w.str("a");
  w.u32(9);
  w.u32(elem_type);
  w.u64(count);
  std::vector<uint8_t> p(payload, 0);
  w.raw(p.data(), p.size());
  return w.bytes();
}

TEST(GgufFile, ArrayErrors) {
  EXPECT_EQ(error_of(file_with_array(9, 1, 64)), GgufErrc::kNestedArray);
  EXPECT_EQ(error_of(file_with_array(14, 1, 64)), GgufErrc::kBadValueType);
  // count x element size wraps around 2^64
  EXPECT_EQ(error_of(file_with_array(10, (kMax / 8) + 2, 64)), GgufErrc::kTooMany);
  GgufLimits lim;
  lim.max_array_len = kMax;
  try {
    GgufFile::from_bytes(file_with_array(10, (kMax / 8) + 2, 64), lim);
    ADD_FAILURE();
  } catch (const GgufError& e) {
    EXPECT_EQ(e.code(), GgufErrc::kOverflow);
  }
  EXPECT_EQ(error_of(file_with_array(6, 1000, 64)), GgufErrc::kTruncated);
  EXPECT_EQ(error_of(file_with_array(8, 1u << 20, 64)), GgufErrc::kTruncated);
  EXPECT_NO_THROW(GgufFile::from_bytes(file_with_array(6, 16, 64)));
}

TEST(GgufFile, NestedArraysDeepDoNotRecurse) {
  ByteWriter w;
  w.u32(0x46554747);
  w.u32(3);
  w.u64(0);
  w.u64(1);
  w.str("deep");
  w.u32(9);
  for (int d = 0; d < 10000; ++d) {
    w.u32(9);
    w.u64(1);
  }
  EXPECT_EQ(error_of(w.bytes()), GgufErrc::kNestedArray);
}

TEST(GgufFile, DuplicateKeysAndTensors) {
  GgufWriter w;
  w.set_u32("a", 1);
  auto bytes = w.to_bytes();
  ByteWriter b;
  b.u32(0x46554747);
  b.u32(3);
  b.u64(0);
  b.u64(2);
  for (int k = 0; k < 2; ++k) {
    b.str("a");
    b.u32(4);
    b.u32(1);
  }
  EXPECT_EQ(error_of(b.bytes()), GgufErrc::kDuplicateKey);

  ByteWriter t;
  t.u32(0x46554747);
  t.u32(3);
  t.u64(2);
  t.u64(0);
  for (int k = 0; k < 2; ++k) {
    t.str("w");
    t.u32(1);
    t.u64(8);
    t.u32(0);
    t.u64(static_cast<uint64_t>(k) * 32);
  }
  t.pad_to(32);
  std::vector<uint8_t> data(64, 0);
  t.raw(data.data(), data.size());
  EXPECT_EQ(error_of(t.bytes()), GgufErrc::kDuplicateTensor);
}

using test::file_with_alignment;

TEST(GgufFile, Alignment) {
  EXPECT_EQ(error_of(file_with_alignment(4, 0)), GgufErrc::kBadAlignment);
  EXPECT_EQ(error_of(file_with_alignment(4, 3)), GgufErrc::kBadAlignment);
  EXPECT_EQ(error_of(file_with_alignment(4, 1u << 31)), GgufErrc::kBadAlignment);
  EXPECT_EQ(error_of(file_with_alignment(5, 32)), GgufErrc::kBadAlignment);
  EXPECT_EQ(error_of(file_with_alignment(10, 32)), GgufErrc::kBadAlignment);
  EXPECT_NO_THROW(GgufFile::from_bytes(file_with_alignment(4, 64)));
}

TEST(GgufFile, TensorDims) {
  Craft c;
  c.n_dims = 0;
  c.ne = {};
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadDims);
  c = {};
  c.n_dims = 5;
  c.ne = {1, 1, 1, 1, 1};
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadDims);
  c = {};
  c.ne = {4, 0};  // zero dim (division-by-zero PoC)
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadDims);
  c = {};
  c.ne = {kMax, 1};
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadDims);
  c = {};
  c.ne = {uint64_t{1} << 32, uint64_t{1} << 32};  // product overflows int64 (CVE-2024-21802)
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kOverflow);
}

TEST(GgufFile, TensorTypeAndSize) {
  Craft c;
  c.ggml_type = 4;  // removed Q4_2
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadType);
  c.ggml_type = 1000;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadType);
  c = {};
  c.ggml_type = 2;  // Q4_0 with a row of 4 elements: not a block multiple
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadShape);
  c = {};
  // F32 ne0 = SIZE_MAX/4 (PR #24759): 2^64-4 bytes, whose padded size would wrap to 0; it must
  // be rejected by the data-range check, never accepted as a zero-size tensor.
  c.ne = {kMax / 4, 1};
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadOffset);
  c.ne = {kMax / 4 + 1, 1};  // 2^64 bytes: the byte size itself overflows
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kOverflow);
  c = {};
  // Q8_0 element count < INT64_MAX but huge byte size (CVE-2026-33298): data past the end
  c.ggml_type = 8;
  c.ne = {uint64_t{1} << 40, uint64_t{1} << 20};
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadOffset);
}

TEST(GgufFile, TensorOffsets) {
  Craft c;
  c.offset = 3;
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadOffset);
  c.offset = 64;  // aligned, but data runs past the end (Bleeding Llama)
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadOffset);
  c.offset = kMax - 31;  // offset + size wraps
  EXPECT_EQ(error_of(c.bytes()), GgufErrc::kBadOffset);
  EXPECT_NE(message_of(c.bytes()).find("tensor 'w'"), std::string::npos);
}

TEST(GgufFile, OverlappingTensors) {
  ByteWriter t;
  t.u32(0x46554747);
  t.u32(3);
  t.u64(2);
  t.u64(0);
  for (const char* name : {"a", "b"}) {
    t.str(name);
    t.u32(1);
    t.u64(16);
    t.u32(0);
    t.u64(std::string(name) == "a" ? 0 : 32);
  }
  t.pad_to(32);
  std::vector<uint8_t> data(128, 0);
  t.raw(data.data(), data.size());
  EXPECT_EQ(error_of(t.bytes()), GgufErrc::kOverlap);
}

TEST(GgufFile, TruncatedAfterEveryField) {
  const auto full = Craft{}.bytes();
  // Every prefix that cuts a header field or the tensor data must be rejected, never crash.
  for (size_t n = 1; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(GgufFile::from_bytes(cut), GgufError) << "prefix of " << n << " bytes accepted";
  }
}

TEST(GgufFile, AllLengthFieldsMax) {
  Craft c;
  c.key_len = kMax;
  c.n_kv = kMax;
  c.n_tensors = kMax;
  EXPECT_THROW(GgufFile::from_bytes(c.bytes()), GgufError);
}

TEST(GgufFile, MissingFileIsIoError) {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    ADD_FAILURE();
  } catch (const GgufError& e) {
    EXPECT_EQ(e.code(), GgufErrc::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace momentkv
