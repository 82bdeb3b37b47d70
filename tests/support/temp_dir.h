// A fresh directory under the system temp dir, removed with its contents at scope exit.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace momentkv::test {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "momentkv-test",
                   const std::filesystem::path& parent = std::filesystem::temp_directory_path()) {
    std::random_device rd;
    path_ = parent / (prefix + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace momentkv::test
