// JavaScript binding of the gloo communicator (comm/communicator.h).
//
// createCommunicator runs the rendezvous on the libuv pool (RunAsync). Everything that waits on peers
// (barrier, allReduceSum, send, recv, a transfer's wait) runs on a thread of its own instead: such an
// operation blocks until the slowest rank arrives, and on the pool's 4 threads a few of them would
// starve the worker host's file, crypto and zlib work and each other. A posted transfer costs no
// thread at all until its wait() is called.
//
// The typed arrays passed in are kept alive by a reference until the native operation that reads or
// writes them has finished; JavaScript must not touch them meanwhile.
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "addon/comm_handle.h"
#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#include "comm/communicator.h"

namespace longctx::addon {

namespace {

constexpr const char* kNativeHandle = "__longctxCommunicator";

using comm::CommError;
using comm::Communicator;
using comm::PendingTransfer;

struct Done {};
Napi::Value Undefined(Napi::Env env, Done&) { return env.Undefined(); }

// --- arguments --------------------------------------------------------------------------------------

// A collective: it waits for the other ranks, so it runs on a thread of its own (AsyncOptions).
Napi::Promise OnOwnThread(Napi::Env env, std::function<void()> work) {
  AsyncOptions options;
  options.own_thread = true;
  return RunAsync<Done>(
      env,
      [work = std::move(work)](const ReportProgress&) {
        work();
        return Done{};
      },
      Undefined, std::move(options));
}

// The bytes behind a TypedArray (Buffer included) or DataView.
struct View {
  void* data;
  size_t bytes;
};

View ViewArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() > index && info[index].IsTypedArray()) {
    auto array = info[index].As<Napi::TypedArray>();
    return {static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset(), array.ByteLength()};
  }
  if (info.Length() > index && info[index].IsDataView()) {
    auto view = info[index].As<Napi::DataView>();
    return {static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset(), view.ByteLength()};
  }
  ThrowTypeError(info.Env(), ArgName(index, name) + " must be a TypedArray, Buffer or DataView");
}

using Keepalive = std::shared_ptr<Napi::Reference<Napi::Value>>;
Keepalive Keep(Napi::Value value) {
  return std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(value));
}

std::string StringOption(Napi::Object options, const char* name, std::optional<std::string> fallback) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined() && fallback) return *fallback;
  if (!value.IsString() || value.As<Napi::String>().Utf8Value().empty())
    ThrowTypeError(options.Env(), std::string("options.") + name + " must be a non-empty string");
  return value.As<Napi::String>().Utf8Value();
}

comm::CommOptions ParseOptions(const Napi::CallbackInfo& info) {
  Napi::Object o = ObjectArg(info, 0, "options");
  comm::CommOptions options;
  options.size = static_cast<int>(IntegerField(o, "options", "size", 1, 1 << 20));
  options.rank = static_cast<int>(IntegerField(o, "options", "rank", 0, options.size - 1));
  options.prefix = StringOption(o, "prefix", std::nullopt);
  options.redis_host = StringOption(o, "redisHost", "127.0.0.1");
  options.redis_port = static_cast<int>(IntegerField(o, "options", "redisPort", 1, 65535));
  options.bind_host = StringOption(o, "bindHost", "127.0.0.1");
  options.timeout =
      std::chrono::milliseconds(IntegerField(o, "options", "timeoutMs", 1, int64_t{1} << 40, 30000));
  return options;
}

// --- the Communicator object ------------------------------------------------------------------------

// What every method of one JavaScript Communicator shares. Operations capture their own reference to
// the native communicator, so close() never frees it under an operation still in flight.
// Collectives run on threads of their own, yet must reach gloo in the order JavaScript called them:
// every rank issues the same sequence, and two threads racing for the communicator could swap two
// all-reduces of the same length on one rank only. Each call takes a ticket on the main thread; its
// thread waits for that turn.
class CollectiveOrder {
 public:
  uint64_t Take() { return next_++; }  // main thread only

  void RunInTurn(uint64_t ticket, const std::function<void()>& collective) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      turn_.wait(lock, [&] { return serving_ == ticket; });
    }
    struct PassTurn {
      CollectiveOrder* order;
      ~PassTurn() {
        std::lock_guard<std::mutex> lock(order->mutex_);
        order->serving_++;
        order->turn_.notify_all();
      }
    } pass{this};
    collective();
  }

 private:
  uint64_t next_ = 0;
  std::mutex mutex_;
  std::condition_variable turn_;
  uint64_t serving_ = 0;
};

struct CommHandle {
  std::shared_ptr<Communicator> comm;  // null once closed
  std::string name;                    // "rank 1 of 4 in 'longctx/job/1'"
  std::shared_ptr<CollectiveOrder> order = std::make_shared<CollectiveOrder>();

  // Runs a collective on its own thread, in call order.
  Napi::Promise Collective(Napi::Env env, std::function<void(Communicator&)> run) const {
    if (!comm) return Rejected(env, "communicator (" + name + ") is closed");
    return OnOwnThread(env, [comm = comm, order = order, ticket = order->Take(), run] {
      order->RunInTurn(ticket, [&] { run(*comm); });
    });
  }

  std::shared_ptr<Communicator> Get(Napi::Env env) const {
    if (!comm) throw Napi::Error::New(env, "communicator (" + name + ") is closed");
    return comm;
  }
};

// One posted transfer as JavaScript sees it. Members are destroyed bottom-up: the transfer before the
// buffer it points into, the buffer before the communicator.
struct TransferRecord {
  std::shared_ptr<Communicator> comm;
  Keepalive buffer;
  std::unique_ptr<PendingTransfer> transfer;
  std::optional<Napi::Reference<Napi::Promise>> waiting;  // the promise of the first wait()
};

std::shared_ptr<TransferRecord> PostTransfer(const Napi::CallbackInfo& info, const CommHandle& handle,
                                             PendingTransfer::Kind kind) {
  Napi::Env env = info.Env();
  auto comm = handle.Get(env);
  int peer = static_cast<int>(IntegerArg(info, 0, "peer", 0, comm->size() - 1));
  View view = ViewArg(info, 1, "data");
  auto tag = static_cast<uint32_t>(IntegerArg(info, 2, "tag", 0, comm::kMaxTag));
  auto record = std::make_shared<TransferRecord>();
  record->comm = comm;
  record->buffer = Keep(info[1]);
  try {
    record->transfer = kind == PendingTransfer::Kind::kSend ? comm->ISend(peer, view.data, view.bytes, tag)
                                                            : comm->IRecv(peer, view.data, view.bytes, tag);
  } catch (const CommError& e) {
    throw Napi::Error::New(env, e.what());
  }
  return record;
}

Napi::Promise WaitTransfer(Napi::Env env, const std::shared_ptr<TransferRecord>& record) {
  return OnOwnThread(env, [record] { record->transfer->Wait(); });
}

// The object isend/irecv return: { kind, peer, tag, bytes, wait() }.
Napi::Object TransferObject(Napi::Env env, std::shared_ptr<TransferRecord> record) {
  const PendingTransfer& t = *record->transfer;
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", t.kind() == PendingTransfer::Kind::kSend ? "send" : "recv");
  out.Set("peer", t.peer());
  out.Set("tag", t.tag());
  out.Set("bytes", static_cast<double>(t.bytes()));
  out.Set("wait", Napi::Function::New(
                      env,
                      [record](const Napi::CallbackInfo& info) -> Napi::Value {
                        if (!record->waiting)
                          record->waiting = Napi::Persistent(WaitTransfer(info.Env(), record));
                        return record->waiting->Value();
                      },
                      "wait"));
  return out;
}

// allReduceSum(Float32Array | Float64Array): sums in place across ranks.
Napi::Value AllReduceSum(const Napi::CallbackInfo& info, const CommHandle& handle) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray())
    ThrowTypeError(env, ArgName(0, "data") + " must be a Float32Array or Float64Array");
  auto array = info[0].As<Napi::TypedArray>();
  const napi_typedarray_type type = array.TypedArrayType();
  if (type != napi_float32_array && type != napi_float64_array) {
    ThrowTypeError(env, ArgName(0, "data") + " must be a Float32Array or Float64Array");
  }
  void* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  size_t count = array.ElementLength();
  Keepalive keep = Keep(info[0]);
  return handle.Collective(env, [keep, data, count, type](Communicator& comm) {
    if (type == napi_float32_array) {
      comm.AllReduceSum(static_cast<float*>(data), count);
    } else {
      comm.AllReduceSum(static_cast<double*>(data), count);
    }
  });
}

Napi::Object CommunicatorObject(Napi::Env env, std::shared_ptr<Communicator> comm) {
  auto handle = std::make_shared<CommHandle>();
  handle->name = "rank " + std::to_string(comm->rank()) + " of " + std::to_string(comm->size()) + " in '" +
                 comm->prefix() + "'";
  handle->comm = comm;

  Napi::Object out = Napi::Object::New(env);
  // Hidden from enumeration and JSON: how CommunicatorFromJs finds the native communicator.
  out.DefineProperty(Napi::PropertyDescriptor::Value(
      kNativeHandle,
      Napi::External<std::shared_ptr<CommHandle>>::New(
          env, new std::shared_ptr<CommHandle>(handle),
          [](Napi::Env, std::shared_ptr<CommHandle>* boxed) { delete boxed; }),
      napi_default));
  out.Set("rank", comm->rank());
  out.Set("size", comm->size());
  out.Set("prefix", comm->prefix());
  out.Set("timeoutMs", static_cast<double>(comm->timeout().count()));

  auto method = [&](const char* name, std::function<Napi::Value(const Napi::CallbackInfo&, CommHandle&)> fn) {
    out.Set(name, Napi::Function::New(
                      env, [handle, fn](const Napi::CallbackInfo& info) { return fn(info, *handle); }, name));
  };

  method("barrier", [](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
    return h.Collective(info.Env(), [](Communicator& comm) { comm.Barrier(); });
  });
  method("allReduceSum", AllReduceSum);
  method("isend", [](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
    return TransferObject(info.Env(), PostTransfer(info, h, PendingTransfer::Kind::kSend));
  });
  method("irecv", [](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
    return TransferObject(info.Env(), PostTransfer(info, h, PendingTransfer::Kind::kRecv));
  });
  // send/recv: post and wait. A failure to post (closed, failed earlier) rejects like a failed wait.
  auto blocking = [](PendingTransfer::Kind kind) {
    return [kind](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
      std::shared_ptr<TransferRecord> record;
      try {
        record = PostTransfer(info, h, kind);
      } catch (const Napi::TypeError&) {
        throw;
      } catch (const Napi::RangeError&) {
        throw;
      } catch (const Napi::Error& e) {
        return Rejected(info.Env(), e.Message());
      }
      return WaitTransfer(info.Env(), record);
    };
  };
  method("send", blocking(PendingTransfer::Kind::kSend));
  method("recv", blocking(PendingTransfer::Kind::kRecv));
  method("stats", [](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
    auto comm = h.Get(info.Env());
    comm::CommStats s = comm->stats();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("bytesSent", static_cast<double>(s.bytes_sent));
    out.Set("bytesReceived", static_cast<double>(s.bytes_received));
    out.Set("waitSeconds", s.wait_seconds);
    return out;
  });
  method("failure", [](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
    std::string failure = h.Get(info.Env())->failure();
    return failure.empty() ? info.Env().Null() : Napi::String::New(info.Env(), failure);
  });
  // close(): drops this handle's reference on the pool; the connections close as soon as operations
  // still in flight have settled. Closing twice is a no-op.
  method("close", [](const Napi::CallbackInfo& info, CommHandle& h) -> Napi::Value {
    std::shared_ptr<Communicator> comm = std::move(h.comm);
    h.comm.reset();
    return RunAsync<Done>(
        info.Env(),
        [comm](const ReportProgress&) mutable {
          comm.reset();
          return Done{};
        },
        Undefined);
  });
  return out;
}

// createCommunicator(options) → Promise<Communicator>
Napi::Value CreateCommunicator(const Napi::CallbackInfo& info) {
  comm::CommOptions options = ParseOptions(info);
  return RunAsync<std::shared_ptr<Communicator>>(
      info.Env(),
      [options](const ReportProgress&) {
        return std::shared_ptr<Communicator>(Communicator::Connect(options));
      },
      [](Napi::Env env, std::shared_ptr<Communicator>& comm) -> Napi::Value {
        return CommunicatorObject(env, comm);
      });
}

}  // namespace

std::shared_ptr<comm::Communicator> CommunicatorFromJs(Napi::Value value) {
  Napi::Env env = value.Env();
  if (value.IsObject()) {
    Napi::Value boxed = value.As<Napi::Object>().Get(kNativeHandle);
    if (boxed.IsExternal())
      return (*boxed.As<Napi::External<std::shared_ptr<CommHandle>>>().Data())->Get(env);
  }
  throw Napi::TypeError::New(env, "expected a Communicator from createCommunicator()");
}

void RegisterComm(Napi::Env env, Napi::Object exports) {
  exports.Set("createCommunicator", Napi::Function::New(env, CreateCommunicator, "createCommunicator"));
}

}  // namespace longctx::addon
