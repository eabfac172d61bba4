// The trainable form of a model: every tensor of the weight list as an f32 master copy with its
// gradient. Views into it drive both the training graph and the inference engine, so rollouts
// run on the very weights being trained.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

namespace r1 {

struct Parameter {
  TensorSpec spec;
  std::vector<float> value;
  std::vector<float> grad;  // empty for buffers (the correction bias)
  bool trainable = true;    // false: the router correction bias (updated by the balance rule)
  bool decay = true;        // weight decay applies (matrices and embeddings, not norms)
};

class ParameterStore {
 public:
  ParameterStore() = default;
  ParameterStore(const ParameterStore&) = delete;
  ParameterStore& operator=(const ParameterStore&) = delete;
  ParameterStore(ParameterStore&&) = default;
  ParameterStore& operator=(ParameterStore&&) = default;

  // Dequantized f32 copy of a checkpoint's tensors. MTP modules are included when the config has
  // them and the checkpoint holds them; with `add_missing_mtp` absent ones are initialized.
  static Result<ParameterStore> FromCheckpoint(const ModelConfig& c, const io::Checkpoint& ck,
                                               bool add_missing_mtp = false, uint64_t seed = 0);
  // Random initialization (matrices N(0, std²), norms 1, bias 0).
  static ParameterStore Random(const ModelConfig& c, uint64_t seed, double std);

  const ModelConfig& config() const { return config_; }
  std::vector<Parameter>& params() { return params_; }
  const std::vector<Parameter>& params() const { return params_; }
  Parameter* Find(const std::string& name);
  bool has_mtp() const { return has_mtp_; }

  // Weight views (f32) for DeepSeekV3 and the training graph; gradient views of the same layout.
  // Both stay valid as long as the store lives (buffers never reallocate).
  std::unique_ptr<ModelWeights> Weights() const;
  std::unique_ptr<ModelWeights> Grads();
  void ZeroGrad();
  int64_t NumTrainable() const;

  // Another set of gradient buffers of the same layout, zero, with its views: a thread that runs
  // its own share of a step's micro-batches accumulates there; AddGrads then adds it into the
  // store's gradients, tensor by tensor, and zeroes it again.
  struct GradCopy {
    std::vector<std::vector<float>> bufs;  // one per parameter, empty where it has no gradient
    std::unique_ptr<ModelWeights> views;
  };
  GradCopy NewGradCopy() const;
  void AddGrads(GradCopy& g);

  // HF layout: config.json + model.safetensors (f32 or bf16). The MTP copies of the embedding
  // and head are written too, so other tools find a complete checkpoint.
  Status SaveCheckpoint(const std::string& dir, DType dtype = DType::kF32) const;

 private:
  void Add(const TensorSpec& spec, std::vector<float> value);
  // Views of the values, the gradients (grads) or, with `bufs`, of those gradient buffers.
  std::unique_ptr<ModelWeights> Bind(bool grads, const std::vector<std::vector<float>>* bufs = nullptr) const;

  ModelConfig config_;
  std::vector<Parameter> params_;
  std::map<std::string, size_t> index_;
  bool has_mtp_ = false;
};

}  // namespace r1
