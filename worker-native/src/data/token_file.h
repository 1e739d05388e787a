// The training data reader: a packed token file (data/pack.ts writes it: little-endian uint32
// token ids, documents joined into one stream with a BOS before each) memory-mapped read-only.
//
// Why mmap: at the reference scale the stream is ~900M tokens (3.6 GB) and every rank of every
// step touches only 2·S/(2N) of them; mapping lets the page cache hold the file once for all the
// ranks of a node and costs nothing up front.
//
// Sequences are cut from the stream in order, without regard to document boundaries (the BOS
// separators tell the model where documents start): sequence k covers tokens [k·S, k·S + S], that
// is S + 1 tokens, whose first S are the inputs and last S the next-token labels. There are
// floor((tokens - 1) / S) sequences; sequence numbers past the last wrap around to 0, and the
// number of completed passes is returned as the epoch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace longctx::data {

// One rank's share of one sequence: its two zigzag chunks, first chunk then second.
struct TokenShard {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;     // labels[i] is the token after input_ids[i] in the stream
  std::vector<int32_t> positions;  // global positions within the sequence (for RoPE)
  uint64_t epoch = 0;              // completed passes over the file before this sequence
  uint64_t sequence = 0;           // the sequence's index within the file (after wrap-around)
};

class TokenFile {
 public:
  // Maps `path` and checks that it holds exactly `expected_tokens` uint32 tokens (the count the
  // index records); throws std::runtime_error naming the file and both sizes otherwise. Token ids
  // read later must be below `vocab_size`.
  TokenFile(const std::string& path, uint64_t expected_tokens, uint32_t vocab_size);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t tokens() const { return tokens_; }
  uint32_t vocab_size() const { return vocab_size_; }
  bool closed() const { return closed_; }

  // floor((tokens - 1) / seq_len): how many (S+1)-token windows fit. Throws on seq_len < 1.
  uint64_t Sequences(int64_t seq_len) const;

  // Rank `rank` of `world`'s zigzag shard of sequence `sequence` (wrapping around), written to
  // caller buffers of S/world ints each. Throws std::invalid_argument for bad shapes (S not
  // divisible by 2·world, rank out of range, file shorter than one sequence) and
  // std::runtime_error for a token id >= vocab_size or a closed file.
  void ReadShardInto(uint64_t sequence, int64_t seq_len, int rank, int world, int32_t* input_ids,
                     int32_t* labels, int32_t* positions, uint64_t* epoch, uint64_t* sequence_in_file) const;
  TokenShard ReadShard(uint64_t sequence, int64_t seq_len, int rank, int world) const;

  // The token at stream position `index` (bounds-checked); the plain reference the tests use.
  uint32_t At(uint64_t index) const;

  // Unmaps the file; later reads throw. Safe to call twice.
  void Close();

 private:
  void CheckOpen() const;

  std::string path_;
  uint64_t tokens_ = 0;
  uint32_t vocab_size_ = 0;
  const uint32_t* data_ = nullptr;  // nullptr for an empty file (mmap cannot map 0 bytes)
  size_t mapped_bytes_ = 0;
  bool closed_ = false;
};

}  // namespace longctx::data
