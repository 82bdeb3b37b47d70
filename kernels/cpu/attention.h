// Attention over the KV lanes of one layer on the CPU, with the eviction policy's statistics
// fused in: the probabilities the softmax already produced are added into AttentionArgs::attn_sum
// on the way, so scoring needs no second pass over K.
#pragma once

#include <vector>

#include "core/engine/backend.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {

// How attention runs. kAuto: the fastest path the CPU and the arguments allow. The others force
// one, for the tests and benchmarks that compare them: kPerHead calls the `isa` row kernels once
// per (query head, slot); the grouped paths run the query heads that share a KV lane together
// (f32/f16 rows, head_dim a multiple of 8, a CPU with the instructions) and fall back to kPerHead
// where they do not apply (kGroupedAvx512 on a CPU without AVX-512 runs as kGroupedAvx2). The
// grouped paths give the results of the per-head path with their instruction set's row kernels
// (AVX2 for both x86 paths, NEON) bit for bit.
enum class AttentionPath { kAuto, kPerHead, kGroupedAvx2, kGroupedAvx512, kGroupedNeon };
const char* attention_path_name(AttentionPath path);
// The paths this CPU runs, kPerHead first (kAuto not listed).
std::vector<AttentionPath> attention_paths();

// Computes args.out; work is split over KV lanes when statistics are gathered (each lane's sums
// are then written by one thread), else over (token, head) pairs, or (token, KV lane) pairs on a
// grouped path.
void attention(ThreadPool& pool, const AttentionArgs& args, Isa isa = best_isa(),
               AttentionPath path = AttentionPath::kAuto);

}  // namespace momentkv::kernels
