// Build information and the sgemm probe the planner uses as a CPU device's peak rate.
#include <cblas.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon/napi_toolkit.h"
#include "addon/registry.h"
#ifdef LONGCTX_WITH_CUDA
#include "kernels/cuda/device_info.h"
#endif

namespace longctx::addon {

namespace {

struct SgemmRate {
  double gflops;
  double seconds;
  int iterations;
};

// Times C = A·B for n×n float32 matrices; the first product is a warm-up and is not counted.
SgemmRate MeasureSgemm(int n, int iterations, const ReportProgress& report) {
  if (n <= 0) throw std::invalid_argument("sgemm size must be positive, got " + std::to_string(n));
  if (iterations <= 0)
    throw std::invalid_argument("iterations must be positive, got " + std::to_string(iterations));
  const size_t count = static_cast<size_t>(n) * n;
  std::vector<float> a(count), b(count), c(count);
  for (size_t i = 0; i < count; ++i) {
    a[i] = static_cast<float>((i * 7 + 3) % 13) / 13.0f - 0.5f;
    b[i] = static_cast<float>((i * 5 + 1) % 11) / 11.0f - 0.5f;
  }
  auto gemm = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                c.data(), n);
  };
  gemm();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    gemm();
    report({{"iteration", i + 1}, {"of", iterations}});
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double flops = 2.0 * n * static_cast<double>(n) * n * iterations;
  return {flops / seconds / 1e9, seconds, iterations};
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("blas", openblas_get_config());
  out.Set("blasThreads", openblas_get_num_threads());
#ifdef LONGCTX_WITH_CUDA
  out.Set("cuda", true);
  int devices = longctx::cuda::DeviceCount();
  out.Set("cudaDevices", devices);
  Napi::Array names = Napi::Array::New(env, devices);
  for (int i = 0; i < devices; ++i) names.Set(i, longctx::cuda::DeviceName(i));
  out.Set("cudaDeviceNames", names);
#else
  out.Set("cuda", false);
  out.Set("cudaDevices", 0);
  out.Set("cudaDeviceNames", Napi::Array::New(env, 0));
#endif
  return out;
}

// setBlasThreads(n): each emulated device is one process; it should use the threads it was given.
Napi::Value SetBlasThreads(const Napi::CallbackInfo& info) {
  int threads = static_cast<int>(NumberArg(info, 0, "threads"));
  if (threads < 1) throw Napi::RangeError::New(info.Env(), "threads must be at least 1");
  openblas_set_num_threads(threads);
  return info.Env().Undefined();
}

// measureSgemm(n, iterations, onProgress?) → Promise<{gflops, seconds, iterations}>
Napi::Value MeasureSgemmJs(const Napi::CallbackInfo& info) {
  int n = static_cast<int>(NumberArg(info, 0, "n"));
  int iterations = static_cast<int>(NumberArg(info, 1, "iterations"));
  AsyncOptions options;
  options.on_progress = OptionalFunctionArg(info, 2, "onProgress");
  return RunAsync<SgemmRate>(
      info.Env(), [=](const ReportProgress& report) { return MeasureSgemm(n, iterations, report); },
      [](Napi::Env env, SgemmRate& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("gflops", r.gflops);
        out.Set("seconds", r.seconds);
        out.Set("iterations", r.iterations);
        return out;
      },
      std::move(options));
}

}  // namespace

void RegisterSystem(Napi::Env env, Napi::Object exports) {
  // One emulated device is one process on one core: OpenBLAS starts single-threaded, and a worker
  // raises it with setBlasThreads when its launch gives it more. Its own threads, when several
  // kernels run at once on the libuv pool (tests do), can also deadlock OpenBLAS's pthread build.
  openblas_set_num_threads(1);
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("setBlasThreads", Napi::Function::New(env, SetBlasThreads, "setBlasThreads"));
  exports.Set("measureSgemm", Napi::Function::New(env, MeasureSgemmJs, "measureSgemm"));
}

}  // namespace longctx::addon
