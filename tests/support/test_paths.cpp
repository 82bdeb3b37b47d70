#include "tests/support/test_paths.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace momentkv::test {

std::string model_path(const std::string& rel) {
  const char* env = std::getenv("MOMENTKV_MODELS_DIR");
  std::filesystem::path dir = env ? env : MOMENTKV_MODELS_DIR;
  auto p = dir / rel;
  EXPECT_TRUE(std::filesystem::exists(p))
      << "test model missing: " << p << " (tests read models from ../shared/models)";
  return p.string();
}

std::string momentkv_binary() {
  return std::string(MOMENTKV_BINARY_DIR) + "/tools/momentkv";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace momentkv::test
