#include "data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "ring/zigzag.h"

namespace longctx::data {

namespace {

// The file format is little-endian; on a big-endian host every token is swapped on read.
inline uint32_t FromLittleEndian(uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap32(v);
#else
  return v;
#endif
}

std::string SystemError(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

TokenFile::TokenFile(const std::string& path, uint64_t expected_tokens, uint32_t vocab_size)
    : path_(path), tokens_(expected_tokens), vocab_size_(vocab_size) {
  if (vocab_size == 0) throw std::invalid_argument("vocab size must be positive, got 0");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(SystemError("cannot open token file", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string message = SystemError("cannot stat token file", path);
    ::close(fd);
    throw std::runtime_error(message);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size != expected_tokens * 4) {
    ::close(fd);
    throw std::runtime_error(
        "token file " + path + " is " + std::to_string(size) + " bytes but its index says " +
        std::to_string(expected_tokens) + " tokens (" + std::to_string(expected_tokens * 4) +
        " bytes): the file is truncated or does not belong to this index; pack it again");
  }
  if (size > 0) {
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
      std::string message = SystemError("cannot map token file", path);
      ::close(fd);
      throw std::runtime_error(message);
    }
    data_ = static_cast<const uint32_t*>(mapped);
    mapped_bytes_ = size;
  }
  ::close(fd);  // the mapping keeps the file alive
}

TokenFile::~TokenFile() { Close(); }

void TokenFile::Close() {
  if (closed_) return;
  if (data_ != nullptr) ::munmap(const_cast<uint32_t*>(data_), mapped_bytes_);
  data_ = nullptr;
  mapped_bytes_ = 0;
  closed_ = true;
}

void TokenFile::CheckOpen() const {
  if (closed_) throw std::runtime_error("token file " + path_ + " is closed");
}

uint64_t TokenFile::Sequences(int64_t seq_len) const {
  if (seq_len < 1)
    throw std::invalid_argument("seq_len must be a positive integer, got " + std::to_string(seq_len));
  if (tokens_ == 0) return 0;
  return (tokens_ - 1) / static_cast<uint64_t>(seq_len);
}

uint32_t TokenFile::At(uint64_t index) const {
  CheckOpen();
  if (index >= tokens_) {
    throw std::out_of_range("token index " + std::to_string(index) + " is past the end of " + path_ + " (" +
                            std::to_string(tokens_) + " tokens)");
  }
  return FromLittleEndian(data_[index]);
}

void TokenFile::ReadShardInto(uint64_t sequence, int64_t seq_len, int rank, int world, int32_t* input_ids,
                              int32_t* labels, int32_t* positions, uint64_t* epoch,
                              uint64_t* sequence_in_file) const {
  CheckOpen();
  const ring::ZigzagShard shard = ring::Zigzag(seq_len, world, rank);
  if (seq_len > INT32_MAX) {
    throw std::invalid_argument("seq_len " + std::to_string(seq_len) + " does not fit int32 positions");
  }
  const uint64_t sequences = Sequences(seq_len);
  if (sequences == 0) {
    throw std::invalid_argument("token file " + path_ + " has " + std::to_string(tokens_) +
                                " tokens, fewer than one sequence of seq_len " + std::to_string(seq_len) +
                                " needs (" + std::to_string(seq_len + 1) + ")");
  }
  const uint64_t k = sequence % sequences;
  const uint64_t base = k * static_cast<uint64_t>(seq_len);
  for (int64_t i = 0; i < shard.tokens(); ++i) {
    const int64_t position = shard.Position(i);
    const uint64_t at = base + static_cast<uint64_t>(position);
    // at + 1 <= base + seq_len <= tokens - 1 by the definition of Sequences.
    const uint32_t input = FromLittleEndian(data_[at]);
    const uint32_t label = FromLittleEndian(data_[at + 1]);
    if (input >= vocab_size_ || label >= vocab_size_) {
      const uint64_t bad_at = input >= vocab_size_ ? at : at + 1;
      throw std::runtime_error("token file " + path_ + ": token " + std::to_string(bad_at) + " is id " +
                               std::to_string(input >= vocab_size_ ? input : label) +
                               ", not below the vocab size " + std::to_string(vocab_size_) +
                               " (the file does not match its tokenizer)");
    }
    input_ids[i] = static_cast<int32_t>(input);
    labels[i] = static_cast<int32_t>(label);
    positions[i] = static_cast<int32_t>(position);
  }
  if (epoch != nullptr) *epoch = sequence / sequences;
  if (sequence_in_file != nullptr) *sequence_in_file = k;
}

TokenShard TokenFile::ReadShard(uint64_t sequence, int64_t seq_len, int rank, int world) const {
  const ring::ZigzagShard shard = ring::Zigzag(seq_len, world, rank);
  TokenShard out;
  out.input_ids.resize(shard.tokens());
  out.labels.resize(shard.tokens());
  out.positions.resize(shard.tokens());
  ReadShardInto(sequence, seq_len, rank, world, out.input_ids.data(), out.labels.data(), out.positions.data(),
                &out.epoch, &out.sequence);
  return out;
}

}  // namespace longctx::data
