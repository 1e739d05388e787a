#include "comm/rendezvous.h"

#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/redis_store.h>
#include <gloo/transport/pair.h>
#include <gloo/transport/tcp/address.h>
#include <gloo/transport/tcp/device.h>
#include <unistd.h>

#include <cstdio>
#include <thread>
#include <vector>

namespace longctx::comm {

namespace {

using Clock = std::chrono::steady_clock;

// How often a waiting rank asks Redis whether the others arrived. Rendezvous happens once per attempt;
// 10 ms costs nothing and adds at most 10 ms to it.
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string ArrivalKey(int rank) { return "arrived/" + std::to_string(rank); }
std::string EndsKey(int rank) { return "ends/" + std::to_string(rank); }

// "rank 2" or "ranks 2, 3".
std::string RankList(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

// The attempt's view of Redis: gloo's PrefixStore (keys "<prefix>/<key>") whose waits end at the
// rendezvous deadline. gloo's RedisStore::get waits a fixed 30 s for a missing key, which would let a
// rank that vanished mid-rendezvous hold the others far past their timeout.
class AttemptStore : public gloo::rendezvous::PrefixStore {
 public:
  AttemptStore(const std::string& prefix, gloo::rendezvous::RedisStore& redis, Clock::time_point deadline)
      : PrefixStore(prefix, redis), redis_(redis), deadline_(deadline) {}

  void SetDeadline(Clock::time_point deadline) { deadline_ = deadline; }

  bool Exists(const std::vector<std::string>& keys) {
    std::vector<std::string> full;
    for (const auto& key : keys) full.push_back(joinKey(key));
    return redis_.check(full);
  }

  // Polls until every key exists; false when `deadline` passes first.
  bool WaitUntil(const std::vector<std::string>& keys, Clock::time_point deadline) {
    for (;;) {
      if (Exists(keys)) return true;
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(kPollInterval);
    }
  }

  std::vector<char> get(const std::string& key) override {
    wait({key});
    return PrefixStore::get(key);  // the key exists now: gloo's own 30 s wait returns at once
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, std::chrono::milliseconds(0)); }

  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    Clock::time_point until = deadline_;
    if (timeout.count() > 0) until = std::min(until, Clock::now() + timeout);
    if (!WaitUntil(keys, until)) {
      throw CommError("key '" + joinKey(keys.front()) +
                      "' did not appear in time (a rank left the rendezvous)");
    }
  }

 private:
  gloo::rendezvous::RedisStore& redis_;
  Clock::time_point deadline_;
};

// gloo's rendezvous context, with access to the address each peer published for its pair with us.
class MeshContext : public gloo::rendezvous::Context {
 public:
  using gloo::rendezvous::Context::Context;
  std::vector<char> PeerAddress(std::vector<char>& published, int peer) {
    return extractAddress(published, peer);
  }
};

}  // namespace

namespace detail {

std::string GlooMessage(const std::exception& error) {
  std::string message = error.what();
  // GLOO_ERROR_MSG and GLOO_ENFORCE start with "[file:line] "; the location helps nobody running a job.
  while (!message.empty() && message[0] == '[') {
    const size_t end = message.find("] ");
    if (end == std::string::npos || message.find(':') > end) break;
    message = message.substr(end + 2);
  }
  return message;
}

std::string FormatSeconds(std::chrono::milliseconds duration) {
  char text[32];
  const long long ms = duration.count();
  std::snprintf(text, sizeof text, ms % 100 == 0 ? "%.1f s" : "%.3f s", static_cast<double>(ms) / 1000.0);
  return text;
}

}  // namespace detail

void ValidateOptions(const CommOptions& o) {
  auto fail = [](const std::string& message) { throw CommError("communicator option " + message); };
  if (o.size < 1) fail("size must be at least 1, got " + std::to_string(o.size));
  if (o.rank < 0 || o.rank >= o.size) {
    fail("rank must be in [0, " + std::to_string(o.size) + "), got " + std::to_string(o.rank));
  }
  if (o.prefix.empty()) fail("prefix must name the job and attempt, e.g. longctx/<job>/<attempt>; got ''");
  if (o.redis_host.empty()) fail("redis_host must not be empty");
  if (o.redis_port < 1 || o.redis_port > 65535) {
    fail("redis_port must be in 1..65535, got " + std::to_string(o.redis_port));
  }
  if (o.bind_host.empty()) fail("bind_host must not be empty");
  if (o.timeout.count() <= 0)
    fail("timeout must be positive, got " + std::to_string(o.timeout.count()) + " ms");
}

Mesh Rendezvous(const CommOptions& o) {
  ValidateOptions(o);
  const std::string what = "rendezvous '" + o.prefix + "'";
  const auto deadline = Clock::now() + o.timeout;

  std::unique_ptr<gloo::rendezvous::RedisStore> redis;
  try {
    redis = std::make_unique<gloo::rendezvous::RedisStore>(o.redis_host, o.redis_port);
  } catch (const std::exception& e) {
    throw CommError(what + ": cannot reach Redis at " + o.redis_host + ":" + std::to_string(o.redis_port) +
                    ": " + detail::GlooMessage(e));
  }
  AttemptStore store(o.prefix, *redis, deadline);

  // 1. Arrive, then wait for everyone else to arrive.
  try {
    const std::string mine = ArrivalKey(o.rank);
    bool claimed = false;
    if (!store.Exists({mine})) {
      try {
        store.set(mine, std::vector<char>{'1'});  // SETNX: exactly one process claims each rank
        claimed = true;
      } catch (const gloo::EnforceNotMet&) {
        // lost a race for the same rank: reported below
      }
    }
    if (!claimed) {
      throw CommError(what + ": rank " + std::to_string(o.rank) +
                      " already joined it; a prefix serves one attempt, so a restarted job must use a new "
                      "one (longctx/<job>/<attempt+1>)");
    }
    std::vector<std::string> everyone;
    for (int r = 0; r < o.size; ++r) everyone.push_back(ArrivalKey(r));
    if (!store.WaitUntil(everyone, deadline)) {
      std::vector<int> missing;
      for (int r = 0; r < o.size; ++r) {
        if (!store.Exists({ArrivalKey(r)})) missing.push_back(r);
      }
      if (!missing.empty()) {
        throw CommError(what + " timed out after " + detail::FormatSeconds(o.timeout) + ": " +
                        RankList(missing) + " of " + std::to_string(o.size) + " never arrived");
      }
    }
  } catch (const CommError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommError(what + ": Redis failed: " + detail::GlooMessage(e));
  }

  // 2. Everyone is here: exchange pair addresses through the store and connect the full mesh. This gets
  // a fresh timeout of its own, so ranks that arrived just before the deadline can still connect.
  std::shared_ptr<gloo::transport::Device> device;
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = o.bind_host;
    device = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    throw CommError(what + ": cannot listen on '" + o.bind_host + "': " + detail::GlooMessage(e));
  }
  auto context = std::make_shared<MeshContext>(o.rank, o.size);
  Mesh mesh;
  try {
    store.SetDeadline(Clock::now() + o.timeout);
    context->setTimeout(o.timeout);
    context->connectFullMesh(store, device);
    // 3. gloo names a lost connection by the far end's address ("Connection closed by peer
    // [127.0.0.1]:40123"). Depending on which side accepted and when, that is either the address the
    // peer published for this pair, or the peer's own end of the connection, known only to the peer:
    // each rank publishes its ends too, so the others can name a lost peer by its rank.
    std::string ends;
    for (int peer = 0; peer < o.size; ++peer) {
      if (peer != o.rank) ends += context->getPair(peer)->address().str();
      ends += '\n';
    }
    store.set(EndsKey(o.rank), std::vector<char>(ends.begin(), ends.end()));
    for (int peer = 0; peer < o.size; ++peer) {
      if (peer == o.rank) continue;
      std::vector<char> published = store.get(std::to_string(peer));  // gloo's key for peer's addresses
      mesh.peer_addresses[gloo::transport::tcp::Address(context->PeerAddress(published, peer)).str()] = peer;
      std::vector<char> peer_ends = store.get(EndsKey(peer));
      std::string line;
      int index = 0;
      for (char c : peer_ends) {
        if (c != '\n') {
          line += c;
          continue;
        }
        if (index++ == o.rank) mesh.peer_addresses[line] = peer;
        line.clear();
      }
    }
  } catch (const std::exception& e) {
    throw CommError(what + ": all " + std::to_string(o.size) +
                    " ranks arrived but connecting them failed: " + detail::GlooMessage(e));
  }
  mesh.context = std::move(context);
  return mesh;
}

}  // namespace longctx::comm
