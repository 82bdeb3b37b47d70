#include "core/engine/batch_decoder.h"

#include <algorithm>

#include "core/util/error.h"

namespace momentkv {

BatchDecoder::BatchDecoder(const Model& model, Backend& backend, MatmulPrecision precision,
                           int32_t max_batch)
    : model_(model), backend_(backend), precision_(precision), max_batch_(std::max(1, max_batch)) {
  const ModelConfig& c = model.config();
  scratch_.resize(c, c.n_rot / 2, max_batch_);
  logits_.resize(static_cast<size_t>(max_batch_) * static_cast<size_t>(c.n_vocab));
  segments_.reserve(static_cast<size_t>(max_batch_));
}

uint64_t BatchDecoder::bytes() const {
  return scratch_.bytes() + logits_.capacity() * sizeof(float) +
         segments_.capacity() * sizeof(Engine::Segment);
}

uint64_t BatchDecoder::bytes_needed(const Model& model, int32_t max_batch) {
  const ModelConfig& c = model.config();
  // Per row: the scratch, a row of logits, a position and a segment.
  const int64_t floats = ForwardScratch::floats_per_row(c, c.n_rot / 2) + c.n_vocab;
  const auto n = static_cast<uint64_t>(std::max(1, max_batch));
  return n * (static_cast<uint64_t>(floats) * sizeof(float) + sizeof(int32_t) +
              sizeof(Engine::Segment));
}

std::span<const float> BatchDecoder::decode(std::span<Engine* const> engines,
                                            std::span<const int32_t> tokens) {
  const auto n = static_cast<int32_t>(engines.size());
  check(n > 0 && n <= max_batch_,
        "BatchDecoder: " + std::to_string(n) + " sequences, at most " + std::to_string(max_batch_));
  check(tokens.size() == engines.size(), "BatchDecoder: one token per sequence");
  segments_.clear();
  for (int32_t i = 0; i < n; ++i) {
    Engine* e = engines[static_cast<size_t>(i)];
    const int32_t t = tokens[static_cast<size_t>(i)];
    check(
        &e->model() == &model_ && &e->backend_ == &backend_ && e->options_.precision == precision_,
        "BatchDecoder: an engine of another model, backend or precision");
    check(e->can_eval(1, Region::kDecode),
          "BatchDecoder: a sequence whose context or cache is full");
    check(t >= 0 && t < e->n_vocab(),
          [&] { return "token id " + std::to_string(t) + " is out of range"; });
    for (int32_t j = 0; j < i; ++j) {
      check(engines[static_cast<size_t>(j)] != e, "BatchDecoder: an engine appears twice");
    }
    segments_.push_back(Engine::Segment{e, i, 1, Region::kDecode});
  }
  Engine::forward_segments(model_, backend_, precision_, scratch_, tokens.data(), segments_, false,
                           logits_.data());
  return std::span<const float>(
      logits_.data(), static_cast<size_t>(n) * static_cast<size_t>(model_.config().n_vocab));
}

}  // namespace momentkv
