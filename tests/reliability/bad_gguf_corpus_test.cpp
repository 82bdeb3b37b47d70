// RELIABILITY.md FZ-4 and FZ-5: every file of the §4.3 bad-input corpus
// (tests/support/gguf_corpus.h) through the validator — rejected with the expected error code,
// each check under 10 ms and 32 MiB of peak RSS — and through the whole load path the daemon
// runs at start (GgufFile::open → Tokenizer::create → Model::from_file): rejected with an error
// that names the field or structure at fault. Under ASan/UBSan (scripts/test-sanitize.sh) the same
// test is the "0 sanitizer reports" check.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/support/gguf_corpus.h"
#include "tests/support/temp_dir.h"

namespace momentkv {
namespace {

struct CorpusFile {
  std::string name;
  std::vector<uint8_t> bytes;
};

std::vector<CorpusFile> corpus() {
  std::vector<CorpusFile> files;
  test::gguf_corpus::all([&](const std::string& name, const std::vector<uint8_t>& bytes) {
    files.push_back({name, bytes});
  });
  return files;
}

// A /proc/self/status field in KiB.
int64_t status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size()));
  }
  return -1;
}

// Resets the peak RSS (VmHWM) to the current RSS; false where the kernel does not allow it.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// What each bad file must be rejected with: the validator's code, or (for files the validator
// cannot judge: a well-formed GGUF whose model or vocabulary is wrong) the field the load path
// names.
struct Expected {
  std::optional<GgufErrc> code;  // nullopt: the validator accepts it
  std::string field;             // named in the error (validator or load path)
};

const std::map<std::string, Expected>& expectations() {
  using E = GgufErrc;
  static const std::map<std::string, Expected> m = {
      {"n_kv_18446744073709551615", {E::kTooMany, "n_kv"}},
      {"n_kv_9223372036854775808", {E::kTooMany, "n_kv"}},
      {"n_kv_200", {E::kTooMany, "n_kv"}},
      {"n_tensors_near_max", {E::kTooMany, "n_tensors"}},
      {"ne_product_overflow", {E::kOverflow, "ne[1]"}},
      {"ne_one_dim_huge", {E::kOverflow, "tensor 'w'"}},
      {"string_len_max", {E::kStringTooLong, "general.architecture"}},
      {"all_lengths_max", {E::kTooMany, "n_tensors"}},
      {"truncated_4", {E::kTruncated, "version"}},
      {"truncated_8", {E::kTruncated, "n_tensors"}},
      {"truncated_16", {E::kTruncated, "n_kv"}},
      // Cut before the key or the tensor table: the counts promise more than the bytes left.
      {"truncated_24", {E::kTooMany, "n_tensors"}},
      {"truncated_32", {E::kTooMany, "n_tensors"}},
      {"truncated_52", {E::kTooMany, "n_tensors"}},
      {"truncated_56", {E::kTruncated, "general.architecture"}},
      {"truncated_69", {E::kTruncated, "name length"}},
      {"truncated_80", {E::kTruncated, "n_dims"}},
      {"truncated_96", {E::kTruncated, "ne[1]"}},
      {"truncated_100", {E::kTruncated, "type"}},
      {"f32_ne0_size_max_div4", {E::kBadOffset, "tensor 'w'"}},
      {"q8_0_huge_bytes", {E::kBadOffset, "tensor 'w'"}},
      {"ne1_zero", {E::kBadDims, "ne[1]"}},
      {"offset_past_end", {E::kBadOffset, "tensor 'w'"}},
      {"offset_wraps", {E::kBadOffset, "tensor 'w'"}},
      {"removed_type", {E::kBadType, "type 4"}},
      {"alignment_2p31", {E::kBadAlignment, "general.alignment"}},
      {"alignment_0", {E::kBadAlignment, "general.alignment"}},
      {"alignment_3", {E::kBadAlignment, "general.alignment"}},
      {"alignment_i32", {E::kBadAlignment, "general.alignment"}},
      {"array_count_wraps", {E::kTooMany, "key 'a' count"}},
      {"nested_arrays_deep", {E::kNestedArray, "key 'deep'"}},
      {"padded_sizes_wrap", {E::kBadOffset, "tensor 't0'"}},
      {"overlapping_tensors", {E::kOverlap, "'a' and 'b'"}},
      {"tokens_truncated", {E::kTruncated, "tokenizer.ggml.tokens"}},
      {"block_count_513", {std::nullopt, "llama.block_count"}},
      {"block_count_4294967295", {std::nullopt, "llama.block_count"}},
      {"scores_u8", {std::nullopt, "tokenizer.ggml.scores"}},
      {"token_type_short", {std::nullopt, "tokenizer.ggml.token_type"}},
      {"scores_long", {std::nullopt, "tokenizer.ggml.scores"}},
      {"byte_token__0x_1_", {std::nullopt, "<0x-1>"}},
      {"byte_token__0xZZ_", {std::nullopt, "<0xZZ>"}},
      {"byte_token__0x0a_", {std::nullopt, "<0x0a>"}},
      {"byte_token__0x100_", {std::nullopt, "<0x100>"}},
      {"bos_out_of_range", {std::nullopt, "tokenizer.ggml.bos_token_id"}},
      {"vocab_size_mismatch", {std::nullopt, "llama.vocab_size"}},
  };
  return m;
}

bool is_valid_seed(const std::string& name) {
  return name.rfind("valid_", 0) == 0;
}

TEST(BadGgufCorpus, ValidatorRejectsEveryCaseWithItsCode) {
  const bool rss_measured = reset_peak_rss();
  int files = 0, rejected = 0;
  double worst_ms = 0;
  int64_t worst_rss_kib = 0;
  for (const auto& f : corpus()) {
    if (is_valid_seed(f.name)) continue;
    const auto it = expectations().find(f.name);
    ASSERT_NE(it, expectations().end()) << f.name << ": a corpus file without an expectation";
    ++files;
    reset_peak_rss();
    const int64_t rss_before = status_kib("VmRSS");
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<GgufErrc> code;
    std::string message;
    try {
      GgufFile::from_bytes(f.bytes);
    } catch (const GgufError& e) {
      code = e.code();
      message = e.what();
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const int64_t rss_kib = status_kib("VmHWM") - rss_before;
    worst_ms = std::max(worst_ms, ms);
    worst_rss_kib = std::max(worst_rss_kib, rss_kib);
    const Expected& want = it->second;
    EXPECT_EQ(code.has_value(), want.code.has_value()) << f.name << ": " << message;
    if (code && want.code) {
      EXPECT_EQ(gguf_errc_name(*code), std::string(gguf_errc_name(*want.code))) << f.name;
      EXPECT_NE(message.find(want.field), std::string::npos) << f.name << ": " << message;
      if (*code == *want.code) ++rejected;
    }
    EXPECT_LT(ms, 10.0) << f.name;
    if (rss_measured) {
      EXPECT_LT(rss_kib, 32 * 1024) << f.name;
    }
  }
  int validator_cases = 0;
  for (const auto& [name, want] : expectations()) validator_cases += want.code ? 1 : 0;
  EXPECT_EQ(rejected, validator_cases);
  std::printf(
      "FIGURE FZ-4: %d of %d §4.3 corpus files the validator can judge rejected with the expected "
      "error code (the other %d are well-formed GGUFs with a bad model or vocabulary: FZ-5); "
      "slowest check %.3f ms (limit 10), largest peak-RSS growth %lld KiB (limit 32 MiB)%s\n",
      rejected, validator_cases, files - validator_cases, worst_ms,
      static_cast<long long>(worst_rss_kib), rss_measured ? "" : " [peak RSS not resettable]");
}

TEST(BadGgufCorpus, TheWholeLoadPathRejectsEveryFileNamingTheField) {
  test::TempDir dir;
  int files = 0, named = 0;
  for (const auto& f : corpus()) {
    if (is_valid_seed(f.name)) continue;
    ++files;
    const std::string path = dir.file(f.name + ".gguf");
    {
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(f.bytes.data()),
                static_cast<std::streamsize>(f.bytes.size()));
    }
    // What momentkvd does at start: open (mmap) and validate, then bind the weights and build
    // the vocabulary (both are tried: each names what it rejects).
    std::string error;
    try {
      GgufFile file = GgufFile::open(path);
      try {
        auto tokenizer = Tokenizer::create(file);
      } catch (const std::exception& e) {
        error = e.what();
      }
      try {
        auto model = Model::from_file(std::move(file));
      } catch (const std::exception& e) {
        error += std::string(error.empty() ? "" : "; ") + e.what();
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    ASSERT_FALSE(error.empty()) << f.name << " loaded";
    const std::string& field = expectations().at(f.name).field;
    EXPECT_NE(error.find(field), std::string::npos) << f.name << ": " << error;
    if (error.find(field) != std::string::npos) ++named;
  }
  std::printf(
      "FIGURE FZ-5: %d of %d §4.3 corpus files rejected by the whole load path (open, "
      "tokenizer, model) with an error naming the field; 0 crashes\n",
      named, files);
}

}  // namespace
}  // namespace momentkv
