// GGUF reader on the real files in ../shared/models.
#include <gtest/gtest.h>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

TEST(GgufFileModel, Stories260K) {
  auto f = GgufFile::open(test::model_path("stories260K/stories260K.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset(), 14176u);
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("llama.block_count"), 5u);
  EXPECT_EQ(f.get_u32("llama.embedding_length"), 64u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  const auto* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(emb->type, GgmlType::F32);
}

TEST(GgufFileModel, EveryShippedFileParses) {
  for (const char* rel :
       {"stories260K/stories260K-F16.gguf", "stories260K/stories260K-Q4_0mix.gguf",
        "stories260K/stories260K-Q5_0mix.gguf", "stories260K/stories260K-Q5_1mix.gguf",
        "stories260K/stories260K-Q8_0mix.gguf", "stories260K-pad256/stories260K-pad256-F32.gguf",
        "stories260K-pad256/stories260K-pad256-Q4_0.gguf",
        "stories260K-pad256/stories260K-pad256-Q4_K_M.gguf",
        "stories260K-pad256/stories260K-pad256-Q8_0.gguf", "vocab/ggml-vocab-gpt-2.gguf",
        "vocab/ggml-vocab-llama-spm.gguf", "vocab/qwen2.5-vocab.gguf",
        "vocab/llama3/llama3-8b-vocab.gguf"}) {
    EXPECT_NO_THROW(GgufFile::open(test::model_path(rel))) << rel;
  }
}

TEST(GgufFileModel, CopyThroughWriterIsIdenticalInContent) {
  auto src = GgufFile::open(test::model_path("stories260K/stories260K-Q8_0mix.gguf"));
  GgufWriter w;
  for (const auto& kv : src.kvs()) w.copy_value(kv.key, kv.value);
  for (const auto& t : src.tensors()) {
    w.add_tensor(t.name, t.ne, t.type, src.tensor_data(t), t.n_bytes);
  }
  auto copy = GgufFile::from_bytes(w.to_bytes());
  ASSERT_EQ(copy.kvs().size(), src.kvs().size());
  for (const auto& kv : src.kvs()) {
    const auto* v = copy.find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_EQ(v->to_string(100000), kv.value.to_string(100000)) << kv.key;
  }
  for (const auto& t : src.tensors()) {
    const auto* c = copy.find_tensor(t.name);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->type, t.type);
    EXPECT_EQ(0, std::memcmp(copy.tensor_data(*c), src.tensor_data(t), t.n_bytes)) << t.name;
  }
}

}  // namespace
}  // namespace momentkv
