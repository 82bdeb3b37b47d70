// The error a malformed GGUF file produces: a code for tests, and a message naming the field and
// the offending value.
#pragma once

#include <string>

#include "core/util/error.h"

namespace momentkv {

enum class GgufErrc {
  kIo,               // cannot open / map the file
  kBadMagic,         // not "GGUF"
  kBadVersion,       // version not 2 or 3
  kTruncated,        // a field runs past the end of the file
  kTooMany,          // a count exceeds its cap or what the remaining bytes could hold
  kStringTooLong,    // a string length exceeds its cap
  kBadValueType,     // unknown metadata value type
  kNestedArray,      // arrays of arrays are rejected
  kDuplicateKey,     // a metadata key appears twice
  kDuplicateTensor,  // a tensor name appears twice
  kBadAlignment,     // general.alignment not a u32 power of two <= 64 KiB
  kBadDims,          // n_dims not in [1,4], or a dimension < 1
  kOverflow,         // element count or byte size overflows
  kBadType,          // unknown ggml type id
  kBadShape,         // ne[0] not a multiple of the type's block size
  kBadOffset,        // tensor offset unaligned or data past the end of the file
  kOverlap,          // two tensors' data overlap
  kWrongType,        // a metadata key has an unexpected value type
  kMissing,          // a required key or tensor is absent
};

const char* gguf_errc_name(GgufErrc c);

class GgufError : public Error {
 public:
  GgufError(GgufErrc code, const std::string& message,
            SourceLocation loc = SourceLocation::current())
      : Error(std::string("GGUF ") + gguf_errc_name(code) + ": " + message, loc), code_(code) {}
  GgufErrc code() const { return code_; }

 private:
  GgufErrc code_;
};

}  // namespace momentkv
