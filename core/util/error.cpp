#include "core/util/error.h"

namespace momentkv {

namespace {
std::string short_file(const char* path) {
  std::string p(path);
  for (const char* root : {"/core/", "/kernels/", "/tools/", "/ipc/", "/daemon/", "/tests/"}) {
    auto pos = p.rfind(root);
    if (pos != std::string::npos) return p.substr(pos + 1);
  }
  return p;
}
}  // namespace

Error::Error(const std::string& message, SourceLocation loc)
    : std::runtime_error(message),
      where_(short_file(loc.file_name()) + ":" + std::to_string(loc.line())) {}

}  // namespace momentkv
