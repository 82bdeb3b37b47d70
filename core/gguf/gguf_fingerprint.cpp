#include "core/gguf/gguf_fingerprint.h"

#include <algorithm>

#include "core/util/sha256.h"

namespace momentkv {

std::string gguf_fingerprint(const GgufFile& file) {
  Sha256 h;
  h.update(file.bytes(), static_cast<size_t>(file.data_offset()));
  const uint64_t size = file.file_size();
  h.update(&size, sizeof size);
  for (const GgufTensorInfo& t : file.tensors()) {
    h.update(file.tensor_data(t), static_cast<size_t>(std::min<uint64_t>(t.n_bytes, 4096)));
  }
  return "sha256:" + h.hex();
}

}  // namespace momentkv
