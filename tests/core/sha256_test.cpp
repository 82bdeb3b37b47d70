#include "core/util/sha256.h"

#include <gtest/gtest.h>

#include <string>

#include "core/gguf/gguf_fingerprint.h"
#include "tests/support/tiny_model.h"

namespace momentkv {
namespace {

std::string sha(const std::string& s) {
  Sha256 h;
  h.update(s.data(), s.size());
  return h.hex();
}

// FIPS 180-4 / NIST CAVS example vectors.
TEST(Sha256, MatchesTheStandardVectors) {
  EXPECT_EQ(sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 million;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) million.update(chunk.data(), chunk.size());
  EXPECT_EQ(million.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, SplitUpdatesEqualOneUpdate) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += static_cast<char>('a' + i % 26);
  for (size_t cut : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 127u, 200u}) {
    Sha256 h;
    h.update(text.data(), cut);
    h.update(text.data() + cut, text.size() - cut);
    EXPECT_EQ(h.hex(), sha(text)) << cut;
  }
}

TEST(GgufFingerprint, NamesTheFileAndChangesWithItsWeights) {
  test::TinyModelSpec spec;
  const auto a = GgufFile::from_bytes(test::tiny_model_writer(spec).to_bytes());
  const auto same = GgufFile::from_bytes(test::tiny_model_writer(spec).to_bytes());
  spec.seed = 2;  // other weights, same shape
  const auto other = GgufFile::from_bytes(test::tiny_model_writer(spec).to_bytes());
  const std::string fp = gguf_fingerprint(a);
  EXPECT_EQ(fp.size(), 7u + 64u);
  EXPECT_EQ(fp.rfind("sha256:", 0), 0u);
  EXPECT_EQ(fp, gguf_fingerprint(same));
  EXPECT_NE(fp, gguf_fingerprint(other));
}

}  // namespace
}  // namespace momentkv
