// Fast incremental WaveNet decoding: the whole sample loop of WaveNetDecoder.step (nsynth_core/wavenet.py) in C++.
//
// A C ABI, loaded with ctypes, so this file needs no PyTorch headers and compiles in seconds on first use.
// Every product of a step is a small batched mat-vec y[b] += x[b] . W, computed by register tiles of
// (batch rows x a few column vectors) while the weights, stored column vector by column vector, stream in order.
// Threads split the batch: each runs its notes through all the steps of a call without synchronising.
// Where the CPU has AVX512-BF16, the products can instead take bfloat16 inputs and weights (sums stay float32):
// one instruction then multiplies and adds two inputs per column, twice float32's rate.

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace {

// Register tiles: a tile of rows x vecs accumulators plus vecs weight vectors fit the vector register file.
#if defined(__AVX512F__)
constexpr int W = 16;  // floats per vector register
constexpr int REGISTERS = 30, MAX_ROWS = 9, MAX_VECS = 4;  // of 32 registers
#elif defined(__AVX__)
constexpr int W = 8;
constexpr int REGISTERS = 15, MAX_ROWS = 4, MAX_VECS = 3;  // of 16
#else
constexpr int W = 4;
constexpr int REGISTERS = 15, MAX_ROWS = 4, MAX_VECS = 3;
#endif

// GCC vector extensions compile to the widest instructions -march allows; aligned(4) permits unaligned access.
typedef float vec __attribute__((vector_size(W * sizeof(float)), aligned(4), may_alias));
typedef int32_t ivec __attribute__((vector_size(W * sizeof(int32_t)), aligned(4), may_alias));

inline vec load(const float* p) { return *reinterpret_cast<const vec*>(p); }
inline void store(float* p, vec v) { *reinterpret_cast<vec*>(p) = v; }
inline vec splat(float x) { return vec{} + x; }
inline vec clamp(vec x, float low, float high) {
  x = x < high ? x : splat(high);
  return x > low ? x : splat(low);
}

// exp with Cephes' single-precision polynomial (about 1 ulp) for x in [-87, 88].
inline vec vexp(vec x) {
  const float round_magic = 12582912.f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  vec n = (x * 1.44269504088896341f + round_magic) - round_magic;
  vec r = x - n * 0.693359375f + n * 2.12194440e-4f;
  vec p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.f;
  ivec exponent = (__builtin_convertvector(n, ivec) + 127) << 23;
  return p * reinterpret_cast<vec&>(exponent);
}

// sigmoid(a) * tanh(b) = (1 - e^-2b) / ((1 + e^-a) (1 + e^-2b)): one division. The clamps keep the product
// finite and change neither factor in float32 (sigmoid(40) and tanh(20) round to 1).
inline vec gate(vec a, vec b) {
  const vec ea = vexp(-clamp(a, -40.f, 40.f)), eb = vexp(-2.f * clamp(b, -20.f, 20.f));
  return (1.f - eb) / ((1.f + ea) * (1.f + eb));
}
inline vec vrelu(vec x) { return x > 0.f ? x : vec{}; }

// Inputs of a product: K values per row, rows `stride` values apart; in float32 (x), or for a bfloat16 product
// possibly already rounded (halves, then x is unused).
struct Rows {
  const float* x;
  int64_t stride, K;
  const uint16_t* halves = nullptr;
};

// Where a tile's sums start and end: y[r, :] = init[r, :] (+ bias) + the tile's products, for VECS column vectors.
struct TileOutput {
  const float* init;
  int64_t init_stride;
  const float* bias;
  float* y;
  int64_t y_stride;
};

// y[r, :] = init[r, :] (+ bias) + sum over inputs of x[r, :K] . w, for ROWS rows from r0 and VECS columns of
// vectors. The inputs follow one another along w's K; column vectors of w are w_stride floats apart.
template <int ROWS, int VECS>
struct Float32Tile {
  static void run(const Rows* inputs, int n_inputs, int64_t r0, const float* w, int64_t w_stride, TileOutput out) {
    vec acc[ROWS][VECS];
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < VECS; ++v)
        acc[r][v] = load(out.init + r * out.init_stride + v * W) + (out.bias ? load(out.bias + v * W) : vec{});
    for (int i = 0; i < n_inputs; ++i) {
      const float* x = inputs[i].x + r0 * inputs[i].stride;
      const int64_t stride = inputs[i].stride;
      for (int64_t k = 0; k < inputs[i].K; ++k, ++x, w += W) {
        vec wk[VECS];
#pragma GCC unroll 4
        for (int v = 0; v < VECS; ++v) wk[v] = load(w + v * w_stride);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
          const float xk = x[r * stride];
#pragma GCC unroll 4
          for (int v = 0; v < VECS; ++v) acc[r][v] += xk * wk[v];
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < VECS; ++v) store(out.y + r * out.y_stride + v * W, acc[r][v]);
  }
};

// TABLE[rows - 1][vecs - 1] is Tile<rows, vecs>::run.
template <typename Fn, template <int, int> class Tile, int ROWS, int... V>
constexpr std::array<Fn, sizeof...(V)> tiles_of_rows(std::integer_sequence<int, V...>) {
  return {&Tile<ROWS, V + 1>::run...};
}
template <typename Fn, template <int, int> class Tile, int... R>
constexpr auto tile_table(std::integer_sequence<int, R...>) {
  return std::array{tiles_of_rows<Fn, Tile, R + 1>(std::make_integer_sequence<int, MAX_VECS>{})...};
}
using Float32Fn = void (*)(const Rows*, int, int64_t, const float*, int64_t, TileOutput);
constexpr auto FLOAT32_TILES = tile_table<Float32Fn, Float32Tile>(std::make_integer_sequence<int, MAX_ROWS>{});

// Round to the nearest bfloat16, ties to even (finite values).
inline uint16_t to_bfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

#if defined(__AVX512BF16__)
constexpr bool HAVE_BFLOAT16 = true;

// x[0..K) rounded to bfloat16 into out, and a zero after an odd K (inputs are multiplied in pairs).
void to_bfloat16(const float* x, int64_t K, uint16_t* out) {
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + k)));
  for (; k < K; ++k) out[k] = to_bfloat16(x[k]);
  if (K % 2) out[K] = 0;
}

// As Float32Tile, on bfloat16 inputs (halves, in pairs of k read as one 32-bit word) and weights w ([K / 2][W][2]
// per column vector, column vectors w_stride halves apart).
template <int ROWS, int VECS>
struct BFloat16Tile {
  static void run(const Rows* inputs, int n_inputs, int64_t r0, const uint16_t* w, int64_t w_stride,
                  TileOutput out) {
    __m512 acc[ROWS][VECS];
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < VECS; ++v)
        acc[r][v] = (__m512)(load(out.init + r * out.init_stride + v * W) + (out.bias ? load(out.bias + v * W)
                                                                                    : vec{}));
    for (int i = 0; i < n_inputs; ++i) {
      const int64_t stride = inputs[i].stride / 2, pairs = (inputs[i].K + 1) / 2;
      const uint32_t* x = reinterpret_cast<const uint32_t*>(inputs[i].halves) + r0 * stride;
      for (int64_t p = 0; p < pairs; ++p, ++x, w += 2 * W) {
        __m512bh wk[VECS];
#pragma GCC unroll 4
        for (int v = 0; v < VECS; ++v) wk[v] = (__m512bh)_mm512_loadu_si512(w + v * w_stride);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
          const __m512bh xk = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r * stride]));
#pragma GCC unroll 4
          for (int v = 0; v < VECS; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xk, wk[v]);
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < VECS; ++v) store(out.y + r * out.y_stride + v * W, (vec)acc[r][v]);
  }
};
using BFloat16Fn = void (*)(const Rows*, int, int64_t, const uint16_t*, int64_t, TileOutput);
constexpr auto BFLOAT16_TILES = tile_table<BFloat16Fn, BFloat16Tile>(std::make_integer_sequence<int, MAX_ROWS>{});
#else
constexpr bool HAVE_BFLOAT16 = false;
void to_bfloat16(const float*, int64_t, uint16_t*) {}  // never called: no bfloat16 decoder is created
#endif

// A [K, N] matrix (input-major) stored column vector by column vector, each streamed in order: in float32 as
// [N / W][K][W]; in bfloat16 as [N / W][K / 2][W][2] (pairs of k side by side, K padded to even with zeros).
struct Packed {
  int64_t K, N, pairs;
  std::vector<float> data;
  std::vector<uint16_t> halves;

  Packed(const float* matrix, int64_t K, int64_t N, bool bfloat16) : K(K), N(N), pairs((K + 1) / 2) {
    if (!bfloat16) {
      data.resize(K * N);
      for (int64_t c = 0; c < N / W; ++c)
        for (int64_t k = 0; k < K; ++k)
          std::memcpy(&data[(c * K + k) * W], matrix + k * N + c * W, W * sizeof(float));
      return;
    }
    halves.assign(N * pairs * 2, 0);
    for (int64_t c = 0; c < N / W; ++c)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < W; ++j)
          halves[((c * pairs + k / 2) * W + j) * 2 + k % 2] = to_bfloat16(matrix[k * N + c * W + j]);
  }
};

// y[r] = init[r] (+ bias) + [inputs of row r] . m for r < rows, in balanced tiles of rows x column vectors.
// Tiles take turns on each group of columns, so the later ones find its weights in L1. A bfloat16 matrix
// first rounds the inputs not yet rounded into `scratch` (rows x their K, each padded to even).
void matmul(int64_t rows, const Rows* inputs, int n_inputs, const Packed& m, const float* init,
            int64_t init_stride, const float* bias, float* y, int64_t y_stride, uint16_t* scratch) {
  const int64_t tiles = (rows + MAX_ROWS - 1) / MAX_ROWS, columns = m.N / W;
  const int64_t most_vecs = std::min<int64_t>(MAX_VECS, REGISTERS / ((rows + tiles - 1) / tiles + 1));
  const bool bfloat16 = !m.halves.empty();
  thread_local std::vector<Rows> rounded;
  if (bfloat16) {
    rounded.assign(inputs, inputs + n_inputs);
    for (int i = 0; i < n_inputs; ++i) {
      if (inputs[i].halves) continue;
      const int64_t stride = inputs[i].K + inputs[i].K % 2;
      for (int64_t r = 0; r < rows; ++r) to_bfloat16(inputs[i].x + r * inputs[i].stride, inputs[i].K, scratch + r * stride);
      rounded[i] = {nullptr, stride, inputs[i].K, scratch};
      scratch += rows * stride;
    }
    inputs = rounded.data();
  }
  for (int64_t c = 0; c < columns; c += most_vecs) {
    const int64_t vecs = std::min(most_vecs, columns - c);
    for (int64_t tile = 0, r0 = 0; tile < tiles; ++tile) {
      const int64_t tile_rows = rows / tiles + (tile < rows % tiles);
      const TileOutput out{init + r0 * init_stride + c * W, init_stride, bias ? bias + c * W : nullptr,
                           y + r0 * y_stride + c * W, y_stride};
      if (!bfloat16) {
        FLOAT32_TILES[tile_rows - 1][vecs - 1](inputs, n_inputs, r0, &m.data[c * m.K * W], m.K * W, out);
      } else {
#if defined(__AVX512BF16__)
        BFLOAT16_TILES[tile_rows - 1][vecs - 1](inputs, n_inputs, r0, &m.halves[c * m.pairs * 2 * W],
                                                m.pairs * 2 * W, out);
#endif
      }
      r0 += tile_rows;
    }
  }
}

inline int64_t wrap(int64_t i, int64_t n) { return ((i % n) + n) % n; }

// Class index drawn from softmax(logits / temperature) by inverse CDF with one uniform u in [0, 1), the same
// scheme as generate.py's sample_logits (cumulative sum in double like torch.cumsum; first CDF value > u * total).
int64_t sample(const float* logits, int64_t Q, float temperature, float u, float* probs) {
  vec top = splat(-__builtin_inff());
  for (int64_t i = 0; i < Q; i += W) {
    const vec x = load(logits + i) / temperature;
    top = top > x ? top : x;
  }
  float max = top[0];
  for (int i = 1; i < W; ++i) max = std::max(max, top[i]);
  vec total = {};
  for (int64_t i = 0; i < Q; i += W) {
    const vec e = vexp(clamp(load(logits + i) / temperature - max, -87.f, 0.f));
    store(probs + i, e);
    total += e;
  }
  float sum = 0.f;
  for (int i = 0; i < W; ++i) sum += total[i];
  double cumulative = 0.0;
  for (int64_t i = 0; i < Q; ++i) probs[i] = static_cast<float>(cumulative += probs[i] / sum);
  const float threshold = u * probs[Q - 1];
  return std::min<int64_t>(std::upper_bound(probs, probs + Q, threshold) - probs, Q - 1);
}

int64_t argmax(const float* logits, int64_t Q) { return std::max_element(logits, logits + Q) - logits; }

struct Decoder {
  int64_t batch, frames, hop, R, S, Q, k, E;  // E: excitation channels (0: none)
  bool bfloat16;                              // products in bfloat16 (else float32)
  std::vector<int64_t> dilations;
  std::vector<float> start_w, start_b, skip_start_b, res_skip_b, logits_b;  // start_w [k][R]; res_skip_b [L][R+S]
  Packed skip_start, out1, logits;
  std::vector<Packed> dilated, res_skip;  // [kR + E, 2R] (taps oldest first, then the excitation's weights)
                                          // and [R, R+S] (residual | skip)
  std::vector<float> layer_bias, out_bias;  // [F][L][B][2R] and [F][B][S]: conditioning + conv biases per frame
  // Decoding state.
  int64_t t = 0;
  std::vector<float> previous;            // [B] the sample fed at the next step (mu-law code / 128)
  std::vector<float> input_queue;         // [B][k-1] past input samples of the start conv
  std::vector<std::vector<float>> queues;  // per layer [(k-1)d][B][R]: past layer inputs, a step's rows together
  std::vector<std::vector<uint16_t>> half_queues;  // the same in bfloat16, for bfloat16 products

  int64_t layers() const { return static_cast<int64_t>(dilations.size()); }

  void run_rows(int64_t b0, int64_t b1, int64_t steps, const float* excitation, const float* uniforms,
                float temperature, int64_t* codes, float* logits_out) {
    const int64_t rows = b1 - b0, C = R + S;
    // Per row: h | skip sum; a dilated conv's output; the gate; the output stage's vectors.
    std::vector<float> state(rows * C), conv(rows * 2 * R), gated(rows * R), skip(rows * S), hidden(rows * S),
        out(rows * Q), probs(Q), x(k);
    const int64_t widest = std::max({dilated[0].pairs, skip_start.pairs, out1.pairs});  // pairs of any product's K
    std::vector<uint16_t> scratch(bfloat16 ? rows * (2 * widest + 2) : 0);  // with the pads of odd input sizes
    std::vector<Rows> taps(k + (E > 0));  // the excitation enters the dilated product as one more input
    const Rows h_rows{state.data(), C, R}, gated_rows{gated.data(), R, R}, skip_rows{skip.data(), S, S},
        hidden_rows{hidden.data(), S, S};
    for (int64_t step = 0; step < steps; ++step) {
      const int64_t now = t + step, frame = now / hop;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = b0 + r;
        float* past = input_queue.data() + b * (k - 1);
        for (int64_t j = 0; j < k - 1; ++j) x[j] = past[wrap(now - (k - 1 - j), k - 1)];
        x[k - 1] = previous[b];
        past[now % (k - 1)] = previous[b];
        for (int64_t o = 0; o < R; o += W) {
          vec acc = {};
          for (int64_t j = 0; j < k; ++j) acc += x[j] * load(start_w.data() + j * R + o);
          store(state.data() + r * C + o, acc + load(start_b.data() + o));
        }
      }
      matmul(rows, &h_rows, 1, skip_start, skip_start_b.data(), 0, nullptr, state.data() + R, C, scratch.data());

      for (int64_t l = 0; l < layers(); ++l) {
        const int64_t d = dilations[l], span = (k - 1) * d;
        // A slot holds all rows' entries of one step.
        float* queue = bfloat16 ? nullptr : queues[l].data() + b0 * R;
        uint16_t* half_queue = bfloat16 ? half_queues[l].data() + b0 * R : nullptr;
        for (int64_t j = 0; j < k - 1; ++j) {
          const int64_t slot = wrap(now - (k - 1 - j) * d, span) * batch * R;
          taps[j] = bfloat16 ? Rows{nullptr, R, R, half_queue + slot} : Rows{queue + slot, R, R};
        }
        taps[k - 1] = h_rows;
        if (E > 0) taps[k] = {excitation + (step * batch + b0) * E, E, E};
        matmul(rows, taps.data(), static_cast<int>(taps.size()), dilated[l],
               layer_bias.data() + ((frame * layers() + l) * batch + b0) * 2 * R, 2 * R, nullptr, conv.data(), 2 * R,
               scratch.data());
        for (int64_t r = 0; r < rows; ++r) {  // h becomes the newest entry, in the slot of the oldest tap just read
          const int64_t slot = ((now % span) * batch + r) * R;
          if (bfloat16) to_bfloat16(state.data() + r * C, R, half_queue + slot);
          else std::memcpy(queue + slot, state.data() + r * C, R * sizeof(float));
          const float* c = conv.data() + r * 2 * R;
          for (int64_t i = 0; i < R; i += W) store(gated.data() + r * R + i, gate(load(c + i), load(c + R + i)));
        }
        matmul(rows, &gated_rows, 1, res_skip[l], state.data(), C, res_skip_b.data() + l * C, state.data(), C,
               scratch.data());
      }

      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < S; i += W) store(skip.data() + r * S + i, vrelu(load(state.data() + r * C + R + i)));
      matmul(rows, &skip_rows, 1, out1, out_bias.data() + (frame * batch + b0) * S, S, nullptr, hidden.data(), S,
             scratch.data());
      for (int64_t i = 0; i < rows * S; i += W) store(hidden.data() + i, vrelu(load(hidden.data() + i)));
      matmul(rows, &hidden_rows, 1, logits, logits_b.data(), 0, nullptr, out.data(), Q, scratch.data());

      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = b0 + r;
        const float* row = out.data() + r * Q;
        const int64_t index = uniforms ? sample(row, Q, temperature, uniforms[step * batch + b], probs.data())
                                       : argmax(row, Q);
        const int64_t code = index - Q / 2;  // mu-law code in [-Q/2, Q/2)
        codes[b * steps + step] = code;
        previous[b] = static_cast<float>(code) / static_cast<float>(Q / 2);
        if (logits_out) std::memcpy(logits_out + (step * batch + b) * Q, row, Q * sizeof(float));
      }
    }
  }
};

}  // namespace

extern "C" {

// Weights as in nsynth_core/fastgen.py: matrices input-major [K, N], `dilated_w` [L, kR + E, 2R] with the E rows of
// the excitation's weights after the taps; `layer_bias` [F, L, B, 2R] and
// `out_bias` [F, B, S] already include the dilated conv and out1 biases. All float32, contiguous; copied.
// `bfloat16` (only where fastgen_has_bfloat16()) rounds the matrices, and each product's inputs, to bfloat16.
// Null when bfloat16 is asked for and this build has no bfloat16 products.
void* fastgen_create(int64_t batch, int64_t frames, int64_t hop, int64_t R, int64_t S, int64_t Q, int64_t k,
                     int64_t E, int64_t bfloat16, int64_t layers, const int64_t* dilations, const float* start_w,
                     const float* start_b,
                     const float* skip_start_w, const float* skip_start_b, const float* dilated_w,
                     const float* res_skip_w, const float* res_skip_b, const float* out1_w, const float* logits_w,
                     const float* logits_b, const float* layer_bias, const float* out_bias) {
  if (bfloat16 && !HAVE_BFLOAT16) return nullptr;
  auto copy = [](const float* p, int64_t n) { return std::vector<float>(p, p + n); };
  const int64_t C = R + S;
  const bool half = bfloat16 != 0;
  auto* decoder = new Decoder{batch, frames, hop, R, S, Q, k, E, half,
                              std::vector<int64_t>(dilations, dilations + layers),
                              copy(start_w, k * R), copy(start_b, R), copy(skip_start_b, S),
                              copy(res_skip_b, layers * C), copy(logits_b, Q),
                              Packed(skip_start_w, R, S, half), Packed(out1_w, S, S, half),
                              Packed(logits_w, S, Q, half),
                              {}, {},
                              copy(layer_bias, layers * batch * frames * 2 * R), copy(out_bias, batch * frames * S),
                              0, std::vector<float>(batch), std::vector<float>(batch * (k - 1)), {}, {}};
  for (int64_t l = 0; l < layers; ++l) {
    decoder->dilated.emplace_back(dilated_w + l * (k * R + E) * 2 * R, k * R + E, 2 * R, half);
    decoder->res_skip.emplace_back(res_skip_w + l * R * C, R, C, half);
    if (half) decoder->half_queues.emplace_back(batch * (k - 1) * dilations[l] * R, 0);
    else decoder->queues.emplace_back(batch * (k - 1) * dilations[l] * R, 0.f);
  }
  return decoder;
}

// Decodes the next `steps` samples of every note into codes [B, steps] (mu-law codes). `excitation`
// [steps, B, E] drives the decoder when E > 0; `uniforms` [steps, B] draws the samples (null: greedy);
// `logits_out` [steps, B, Q] receives the logits when not null.
void fastgen_run(void* handle, int64_t steps, const float* excitation, const float* uniforms, double temperature,
                 int64_t threads, int64_t* codes, float* logits_out) {
  auto* decoder = static_cast<Decoder*>(handle);
  const int64_t batch = decoder->batch, parts = std::max<int64_t>(1, std::min(threads, batch));
  std::vector<std::thread> workers;
  for (int64_t part = parts - 1; part >= 0; --part) {
    const int64_t b0 = part * batch / parts, b1 = (part + 1) * batch / parts;
    auto work = [=] {
      decoder->run_rows(b0, b1, steps, excitation, uniforms, static_cast<float>(temperature), codes, logits_out);
    };
    if (part > 0) workers.emplace_back(work);
    else work();
  }
  for (auto& worker : workers) worker.join();
  decoder->t += steps;
}

void fastgen_free(void* handle) { delete static_cast<Decoder*>(handle); }

// Whether this build multiplies in bfloat16 (AVX512-BF16).
int64_t fastgen_has_bfloat16() { return HAVE_BFLOAT16; }

}  // extern "C"
