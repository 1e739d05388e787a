#include "tensor/arena.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace longctx {

std::string FormatBytes(size_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024.0;
  int unit = 0;
  while (value >= 1024.0 && unit < 3) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  return text;
}

namespace {

// The system allocator: an emulated CPU device and host memory.
class SystemMemory final : public MemorySource {
 public:
  size_t alignment() const override { return Arena::kAlignment; }
  void* Reserve(size_t bytes) override { return std::aligned_alloc(Arena::kAlignment, bytes); }
  void Return(void* ptr) override { std::free(ptr); }
  void Zero(void* ptr, size_t bytes) override { std::memset(ptr, 0, bytes); }
  std::string refusal() const override { return "the system allocator refused the memory"; }
};

}  // namespace

Arena::Arena(std::string label, size_t budget_bytes, std::unique_ptr<MemorySource> source)
    : label_(std::move(label)),
      budget_(budget_bytes),
      source_(source ? std::move(source) : std::make_unique<SystemMemory>()),
      alignment_(source_->alignment()) {}

Arena::~Arena() {
  for (auto& [ptr, size] : blocks_) source_->Return(ptr);
}

void* Arena::Allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t counted = RoundUp(bytes);
  auto fail = [&](const char* why) -> OutOfMemoryError {
    std::string message = label_ + " out of memory: requested " + FormatBytes(bytes) + " with " +
                          FormatBytes(current_) + " of " + FormatBytes(budget_) + " in use (" +
                          std::to_string(counted) + " bytes requested, " + std::to_string(current_) + " of " +
                          std::to_string(budget_) + " bytes in use)" + why;
    return OutOfMemoryError(message, counted, current_, budget_);
  };
  if (counted < bytes || counted > budget_ - current_) throw fail("");
  void* ptr = source_->Reserve(counted);
  if (ptr == nullptr) throw fail(("; " + source_->refusal()).c_str());
  blocks_.emplace(ptr, counted);
  current_ += counted;
  if (current_ > peak_) peak_ = current_;
  return ptr;
}

void Arena::Free(void* ptr) {
  if (ptr == nullptr) return;
  auto it = blocks_.find(ptr);
  if (it == blocks_.end()) throw std::logic_error(label_ + ": freeing a pointer this arena did not allocate");
  current_ -= it->second;
  blocks_.erase(it);
  source_->Return(ptr);
}

ArenaBlock::ArenaBlock(std::shared_ptr<Arena> arena, size_t bytes) : arena_(std::move(arena)), bytes_(bytes) {
  if (!arena_) throw std::invalid_argument("ArenaBlock needs an arena");
  data_ = arena_->Allocate(bytes);
}

ArenaBlock::ArenaBlock(ArenaBlock&& other) noexcept
    : arena_(std::move(other.arena_)),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

ArenaBlock& ArenaBlock::operator=(ArenaBlock&& other) noexcept {
  if (this != &other) {
    Release();
    arena_ = std::move(other.arena_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void ArenaBlock::Release() {
  if (data_ != nullptr) arena_->Free(data_);  // cannot throw: the pointer came from this arena
  data_ = nullptr;
  bytes_ = 0;
  arena_.reset();
}

}  // namespace longctx
