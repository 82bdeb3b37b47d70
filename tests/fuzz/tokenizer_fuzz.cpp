// libFuzzer target: arbitrary bytes through the real tokenizers — stories260K's SentencePiece
// vocabulary (required) and, when present in ../shared/models/vocab, the llama-spm, gpt-2,
// qwen2.5 and llama3 vocabularies (byte-level BPE with their pre-tokenizer regexes). The first
// input byte picks the tokenizer and the flags; the rest is encoded and the ids decoded, and read
// as little-endian int32 ids (any value, out of range included) decoded too. A crash, a sanitizer
// report, a leak or a hang is a finding. Seeds: tests/fuzz/corpus/tokenizer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/tokenizer/tokenizer.h"

namespace {

// Text longer than this only repeats what shorter inputs reach (BPE merges are quadratic in a
// pre-tokenized word, so the cap also bounds the time per input).
constexpr size_t kMaxInput = 4 << 10;

std::vector<std::unique_ptr<momentkv::Tokenizer>> load_tokenizers() {
  const char* env = std::getenv("MOMENTKV_MODELS_DIR");
  const std::filesystem::path dir = env ? env : MOMENTKV_MODELS_DIR;
  std::vector<std::unique_ptr<momentkv::Tokenizer>> out;
  const char* files[] = {
      "stories260K/stories260K.gguf",      "vocab/ggml-vocab-llama-spm.gguf",
      "vocab/ggml-vocab-gpt-2.gguf",       "vocab/qwen2.5-vocab.gguf",
      "vocab/llama3/llama3-8b-vocab.gguf",
  };
  for (const char* rel : files) {
    const std::filesystem::path path = dir / rel;
    if (!std::filesystem::exists(path)) {
      if (out.empty()) {
        std::fprintf(stderr, "tokenizer_fuzz: %s is missing\n", path.c_str());
        std::abort();
      }
      continue;
    }
    out.push_back(momentkv::Tokenizer::create(momentkv::GgufFile::open(path.string())));
    std::fprintf(stderr, "tokenizer_fuzz: %s (%d tokens)\n", path.c_str(), out.back()->n_vocab());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizers = load_tokenizers();
  if (size < 1 || size > kMaxInput) return -1;
  const uint8_t mode = data[0];
  const auto& tok = *tokenizers[(mode >> 2) % tokenizers.size()];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::vector<int32_t> ids = tok.encode(text, (mode & 1) != 0, (mode & 2) != 0);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.n_vocab()) __builtin_trap();  // encode gave an invalid id
  }
  (void)tok.decode(ids);

  std::vector<int32_t> raw((size - 1) / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data + 1, raw.size() * 4);
  (void)tok.decode(raw);
  for (int32_t id : raw) (void)tok.token_to_piece(id);
  return 0;
}
