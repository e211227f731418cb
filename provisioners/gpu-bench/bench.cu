// gpu-bench: a few seconds of measurement on the one GPU (or MIG slice) the container is given.
//
//   memory bandwidth  device-to-device cudaMemcpy of a buffer up to 1 GiB, bytes read + written
//   FP32 matmul       cuBLAS SGEMM, pedantic math (no TF32, no tensor cores): the card's FP32 rate
//   FP16 matmul       cuBLAS GemmEx, FP16 in and out, FP32 accumulate (tensor cores where present)
//
// Prints one line of JSON on stdout, the daemon's contract (src/benchmark/output.ts):
//   {"uuid":"GPU-...","name":"...","cudaDriverVersion":"12.4","memoryBandwidthGBps":..,
//    "matmulFp32Tflops":..,"matmulFp16Tflops":..,"durationMs":..}
// Anything else goes to stderr. Exit codes: 2 CUDA error, 3 cuBLAS error, 4 not exactly one GPU.
// No network, no files: it runs on a read-only root as nobody.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>

#define CHECK(call)                                                                         \
  do {                                                                                      \
    cudaError_t err_ = (call);                                                              \
    if (err_ != cudaSuccess) {                                                              \
      fprintf(stderr, "gpu-bench: %s failed: %s\n", #call, cudaGetErrorString(err_));       \
      exit(2);                                                                              \
    }                                                                                       \
  } while (0)

#define CHECK_BLAS(call)                                                                    \
  do {                                                                                      \
    cublasStatus_t st_ = (call);                                                            \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                     \
      fprintf(stderr, "gpu-bench: %s failed: cuBLAS status %d\n", #call, (int)st_);         \
      exit(3);                                                                              \
    }                                                                                       \
  } while (0)

// Non-zero operands: a multiply of zeros can draw less power and clock higher than real work.
__global__ void fill_float(float *p, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) p[i] = 0.001f * (float)((i % 13) + 1);
}

__global__ void fill_half(__half *p, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) p[i] = __float2half(0.01f * (float)((i % 7) + 1));
}

static unsigned blocks_for(size_t n) { return (unsigned)((n + 255) / 256); }

static float elapsed_ms(cudaEvent_t start, cudaEvent_t stop) {
  float ms = 0.0f;
  CHECK(cudaEventSynchronize(stop));
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  return ms;
}

static double memory_bandwidth_gbps(size_t free_bytes) {
  // Two buffers of up to 1 GiB, at most a quarter of free memory each (a 1g.5gb MIG slice too).
  size_t bytes = std::min<size_t>(1ull << 30, free_bytes / 4) & ~((size_t)0xFFFFF);
  void *src = nullptr, *dst = nullptr;
  CHECK(cudaMalloc(&src, bytes));
  CHECK(cudaMalloc(&dst, bytes));
  CHECK(cudaMemset(src, 1, bytes));
  CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));  // warm-up
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  const int iterations = 20;
  CHECK(cudaEventRecord(start));
  for (int i = 0; i < iterations; i++) CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
  CHECK(cudaEventRecord(stop));
  double seconds = elapsed_ms(start, stop) / 1e3;
  CHECK(cudaFree(src));
  CHECK(cudaFree(dst));
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  // Each copy reads and writes `bytes`.
  return 2.0 * (double)bytes * iterations / seconds / 1e9;
}

// Times `gemm` so the measured run lasts about half a second whatever the card's speed.
template <typename Gemm>
static double gemm_tflops(int n, Gemm gemm) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  gemm();  // warm-up: cuBLAS picks and loads its kernel
  CHECK(cudaEventRecord(start));
  gemm();
  CHECK(cudaEventRecord(stop));
  double one = elapsed_ms(start, stop) / 1e3;
  int reps = (int)std::max(3.0, std::min(50.0, 0.5 / std::max(one, 1e-6)));
  CHECK(cudaEventRecord(start));
  for (int i = 0; i < reps; i++) gemm();
  CHECK(cudaEventRecord(stop));
  double seconds = elapsed_ms(start, stop) / 1e3;
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  return 2.0 * (double)n * n * n * reps / seconds / 1e12;
}

// The largest of 8192, 4096, 2048 whose three FP32 matrices fit in half of free memory.
static int matrix_size(size_t free_bytes) {
  int n = 8192;
  while (n > 1024 && 3.0 * n * n * sizeof(float) > free_bytes / 2.0) n /= 2;
  return n;
}

static double sgemm_tflops(cublasHandle_t handle, int n) {
  size_t count = (size_t)n * n;
  float *a, *b, *c;
  CHECK(cudaMalloc(&a, count * sizeof(float)));
  CHECK(cudaMalloc(&b, count * sizeof(float)));
  CHECK(cudaMalloc(&c, count * sizeof(float)));
  fill_float<<<blocks_for(count), 256>>>(a, count);
  fill_float<<<blocks_for(count), 256>>>(b, count);
  CHECK(cudaGetLastError());
  const float alpha = 1.0f, beta = 0.0f;
  CHECK_BLAS(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));
  double tflops = gemm_tflops(n, [&] { CHECK_BLAS(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, n, b, n, &beta, c, n)); });
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  CHECK(cudaFree(c));
  return tflops;
}

static double hgemm_tflops(cublasHandle_t handle, int n) {
  size_t count = (size_t)n * n;
  __half *a, *b, *c;
  CHECK(cudaMalloc(&a, count * sizeof(__half)));
  CHECK(cudaMalloc(&b, count * sizeof(__half)));
  CHECK(cudaMalloc(&c, count * sizeof(__half)));
  fill_half<<<blocks_for(count), 256>>>(a, count);
  fill_half<<<blocks_for(count), 256>>>(b, count);
  CHECK(cudaGetLastError());
  const float alpha = 1.0f, beta = 0.0f;
  CHECK_BLAS(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  double tflops = gemm_tflops(n, [&] {
    CHECK_BLAS(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16F, n, b, CUDA_R_16F, n, &beta, c, CUDA_R_16F, n,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  });
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  CHECK(cudaFree(c));
  return tflops;
}

static void json_string(const char *text, char *out, size_t size) {
  size_t j = 0;
  for (size_t i = 0; text[i] != '\0' && j + 7 < size; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '"' || ch == '\\') { out[j++] = '\\'; out[j++] = (char)ch; }
    else if (ch < 0x20) j += (size_t)snprintf(out + j, size - j, "\\u%04x", ch);
    else out[j++] = (char)ch;
  }
  out[j] = '\0';
}

int main() {
  auto began = std::chrono::steady_clock::now();
  int devices = 0;
  CHECK(cudaGetDeviceCount(&devices));
  if (devices != 1) {
    fprintf(stderr, "gpu-bench: %d GPUs visible; the container must be given exactly one\n", devices);
    return 4;
  }
  CHECK(cudaSetDevice(0));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0;
  CHECK(cudaDriverGetVersion(&driver));
  // CUDA reports a MIG slice's own UUID; nvidia-smi prints it with a MIG- prefix.
  const char *visible = getenv("NVIDIA_VISIBLE_DEVICES");
  const char *prefix = (visible != nullptr && strncmp(visible, "MIG-", 4) == 0) ? "MIG" : "GPU";
  const unsigned char *u = (const unsigned char *)prop.uuid.bytes;
  char uuid[64];
  snprintf(uuid, sizeof uuid, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", prefix, u[0], u[1], u[2], u[3], u[4], u[5], u[6],
           u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);

  size_t free_bytes = 0, total_bytes = 0;
  CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  fprintf(stderr, "gpu-bench: %s (%s), %zu MiB free\n", prop.name, uuid, free_bytes >> 20);
  double bandwidth = memory_bandwidth_gbps(free_bytes);
  cublasHandle_t handle;
  CHECK_BLAS(cublasCreate(&handle));
  int n = matrix_size(free_bytes);
  double fp32 = sgemm_tflops(handle, n);
  double fp16 = hgemm_tflops(handle, n);
  CHECK_BLAS(cublasDestroy(handle));
  long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();

  char name[512];
  json_string(prop.name, name, sizeof name);
  printf("{\"uuid\":\"%s\",\"name\":\"%s\",\"cudaDriverVersion\":\"%d.%d\",\"memoryBandwidthGBps\":%.1f,\"matmulFp32Tflops\":%.2f,\"matmulFp16Tflops\":%.2f,\"durationMs\":%lld}\n",
         uuid, name, driver / 1000, (driver % 1000) / 10, bandwidth, fp32, fp16, ms);
  return 0;
}
