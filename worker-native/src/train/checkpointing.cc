#include "train/checkpointing.h"

#include <cstdlib>
#include <stdexcept>

namespace longctx::train {

CheckpointPolicy CheckpointPolicy::Parse(const std::string& text, const std::string& field) {
  CheckpointPolicy p;
  if (text == "none") return p;
  if (text == "full") {
    p.kind_ = Kind::kFull;
    return p;
  }
  if (text == "selective") {
    p.kind_ = Kind::kSelective;
    return p;
  }
  const std::string prefix = "every-";
  if (text.compare(0, prefix.size(), prefix) == 0 && text.size() > prefix.size()) {
    const std::string digits = text.substr(prefix.size());
    bool ok = digits.find_first_not_of("0123456789") == std::string::npos && digits.size() <= 9;
    const long k = ok ? std::strtol(digits.c_str(), nullptr, 10) : 0;
    if (ok && k >= 1) {
      p.kind_ = Kind::kEvery;
      p.every_ = static_cast<int>(k);
      return p;
    }
  }
  throw std::invalid_argument(
      field + " must be 'none', 'full', 'selective' or 'every-K' with K a positive integer, got '" + text +
      "'");
}

std::string CheckpointPolicy::name() const {
  switch (kind_) {
    case Kind::kNone:
      return "none";
    case Kind::kFull:
      return "full";
    case Kind::kSelective:
      return "selective";
    case Kind::kEvery:
      return "every-" + std::to_string(every_);
  }
  return "none";
}

LayerKeep CheckpointPolicy::ForLayer(int layer) const {
  switch (kind_) {
    case Kind::kNone:
      return LayerKeep::kEverything;
    case Kind::kFull:
      return LayerKeep::kNothing;
    case Kind::kSelective:
      return LayerKeep::kAttention;
    case Kind::kEvery:
      return (layer + 1) % every_ == 0 ? LayerKeep::kEverything : LayerKeep::kNothing;
  }
  return LayerKeep::kEverything;
}

}  // namespace longctx::train
