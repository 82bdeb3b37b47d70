// Attention over the KV lanes of one layer on the CPU, with the eviction policy's statistics
// fused in: the probabilities the softmax already produced are added into AttentionArgs::attn_sum
// on the way, so scoring needs no second pass over K.
#pragma once

#include "core/engine/backend.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {

// Computes args.out; work is split over KV lanes when statistics are gathered (each lane's sums
// are then written by one thread), else over (token, head) pairs — or (token, KV group) pairs on
// the grouped fast path (AVX2, f32/f16 rows, head_dim a multiple of 8; `grouped` false forces
// the per-head path, for the tests that compare the two).
void attention(ThreadPool& pool, const AttentionArgs& args, Isa isa = best_isa(),
               bool grouped = true);

}  // namespace momentkv::kernels
