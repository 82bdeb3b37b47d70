// Where tests find the shared models and the built binaries.
#pragma once

#include <string>

namespace momentkv::test {

// Absolute path of `rel` under ../shared/models (or $MOMENTKV_MODELS_DIR). A missing file makes
// the calling test fail (never skip): model tests must run in CI.
std::string model_path(const std::string& rel);
// Path of the built `momentkv` command.
std::string momentkv_binary();
// Reads a whole file into a string (fails the test if it cannot).
std::string read_file(const std::string& path);

}  // namespace momentkv::test
