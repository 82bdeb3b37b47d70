// Writes the seed corpus of gguf_fuzz (tests/fuzz/corpus/gguf): tiny valid models made with our
// writer (llama + SentencePiece vocabulary, qwen2 + byte-level BPE vocabulary, a model without a
// vocabulary) and one file per bad-input case of RELIABILITY.md §4.3 (tests/support/gguf_corpus.h).
// Each file is a few KiB.
//   make_gguf_seeds OUT_DIR
// The committed corpus was made with it and then minimized (`-merge=1`); rerun it after a format
// change, then merge again (README, "Tests").
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/gguf_corpus.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_gguf_seeds OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out);
  momentkv::test::gguf_corpus::all([&](const std::string& name, const std::vector<uint8_t>& bytes) {
    // No .gguf extension: .gitignore ignores *.gguf (models), and these files are committed.
    std::ofstream f(out / name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    std::printf("%6zu  %s\n", bytes.size(), name.c_str());
  });
  return 0;
}
