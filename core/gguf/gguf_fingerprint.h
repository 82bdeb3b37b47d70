// A model file's identity for telemetry, cheap enough to compute at every load: SHA-256 over the
// GGUF header, metadata and tensor table (every byte before the data section), the file size,
// and the first 4 KiB of every tensor's data. Two files with the same fingerprint have the same
// architecture, vocabulary, tensor layout and the same leading weights of every tensor; hashing
// all the weights (gigabytes) would cost seconds of a core at each start.
#pragma once

#include <string>

#include "core/gguf/gguf_file.h"

namespace momentkv {

// "sha256:<64 hex digits>".
std::string gguf_fingerprint(const GgufFile& file);

}  // namespace momentkv
