// <immintrin.h> for the files compiled for AVX-512. GCC 12 warns that the AVX-512 intrinsics'
// own _mm512_undefined_*() "is used" or "may be used uninitialized" (GCC bug 105593); the
// warning is about the header, not the code that includes it, so it is silenced around it.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
