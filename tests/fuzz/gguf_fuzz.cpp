// libFuzzer target FZ-3 (RELIABILITY.md §4.5): arbitrary bytes through the whole model load path
// the daemon runs at start — GgufFile::from_bytes (the validator), then, for a file it accepts,
// Tokenizer::create and Model::from_file (binding by name, shape and type). Every rejection must
// be a thrown GgufError/Error; a crash, a sanitizer report, a leak or a hang is a finding.
// Seeds: tests/fuzz/corpus/gguf (tiny valid models from make_gguf_seeds.cpp and the §4.3 cases).
#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"

namespace {

// Larger inputs only cost time: the interesting structure of a GGUF is in its first few KiB.
constexpr size_t kMaxInput = 64 << 10;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return -1;
  using namespace momentkv;
  std::vector<uint8_t> bytes(data, data + size);
  try {
    GgufFile file = GgufFile::from_bytes(std::move(bytes));
    // What `momentkv info` prints: every value rendered.
    size_t rendered = 0;
    for (const GgufKv& kv : file.kvs()) rendered += kv.value.to_string().size();
    (void)rendered;
    try {
      auto tokenizer = Tokenizer::create(file);
      // A valid vocabulary must survive its own tokens.
      const int32_t n = tokenizer->n_vocab();
      std::vector<int32_t> ids;
      for (int32_t id = 0; id < n && id < 64; ++id) ids.push_back(id);
      const std::string text = tokenizer->decode(ids);
      (void)tokenizer->encode(text, true, true);
    } catch (const std::exception&) {
      // Rejected vocabulary: still try the weights, as the loader reports both.
    }
    auto model = Model::from_file(std::move(file));
    (void)model->weight_bytes();
  } catch (const std::exception&) {
    // Rejected with an error: the expected outcome for almost every input.
  }
  return 0;
}
