// Modulated deformable convolution (DCNv2, stride 1, "same" output) for CPU inference, fused:
// the bilinear samples of a tile of output pixels are written into a small column block that
// stays in cache, and the block is multiplied by the weight right away, by a register-blocked
// product written here (micro_kernel) on a weight packed once per call. The Python path
// (d2_instseg/layers/deform_conv.py) writes all columns of the image first (9x the input) and
// reads them back in a second pass; here they never leave the cache. Forward only: training
// keeps the differentiable Python path, which computes the same function (tested against it and
// against torchvision.ops.deform_conv2d).
//
// Conventions are torchvision's: offset (N, 2K, H, W) holds (dy, dx) per kernel position in
// row-major kernel order, mask (N, K, H, W) multiplies each sample, a sample is bilinear in the
// input's pixel grid with zeros outside the image.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <memory>

namespace {

// A 4-D tensor's data and strides, read in place: the offsets and masks arrive as channel slices
// of one channels-last conv output, which a contiguous() would copy on every call.
struct Strided {
  const float* data;
  int64_t n, c, y, x;
  explicit Strided(const at::Tensor& t)
      : data(t.data_ptr<float>()), n(t.stride(0)), c(t.stride(1)), y(t.stride(2)),
        x(t.stride(3)) {}
  const float* at(int64_t i, int64_t yy, int64_t xx) const {
    return data + i * n + yy * y + xx * x;
  }
};

// dst[ch] = the bilinear blend of the 4 corner pixels a, b (top row), d, e (bottom row) of c
// channels with their weights.
inline void blend(float* __restrict dst, const float* __restrict a, const float* __restrict b,
                  const float* __restrict d, const float* __restrict e, float w00, float w01,
                  float w10, float w11, int64_t c) {
  for (int64_t ch = 0; ch < c; ++ch)
    dst[ch] = w00 * a[ch] + w01 * b[ch] + w10 * d[ch] + w11 * e[ch];
}

// Writes rows [first, first + count) of the (N * H * W, K * C) column matrix into col: row p is
// output pixel p's K samples of the (N, H, W, C) input x, each times its mask value.
void fill_columns(const float* __restrict x, const Strided& offset, const Strided& mask,
                  float* __restrict col, int64_t first, int64_t count, int64_t h, int64_t w,
                  int64_t c, int64_t kh, int64_t kw, int64_t padding, int64_t dilation) {
  const int64_t k = kh * kw, hw = h * w;
  int64_t n = first / hw, y = first % hw / w, xx = first % w;
  for (int64_t t = 0; t < count; ++t) {
    const float* image = x + n * hw * c;
    const float* off = offset.at(n, y, xx);
    const float* mod = mask.at(n, y, xx);
    for (int64_t tap = 0, i = 0; i < kh; ++i) {
      for (int64_t j = 0; j < kw; ++j, ++tap) {
        float* __restrict dst = col + (t * k + tap) * c;
        const float py = float(y - padding + i * dilation) + off[2 * tap * offset.c];
        const float px = float(xx - padding + j * dilation) + off[(2 * tap + 1) * offset.c];
        // Outside (-1, h) x (-1, w) every corner is outside the image; NaN fails the test too.
        if (!(py > -1.f && py < float(h) && px > -1.f && px < float(w))) {
          std::fill(dst, dst + c, 0.f);
          continue;
        }
        const float y0f = std::floor(py), x0f = std::floor(px), fy = py - y0f, fx = px - x0f;
        const int64_t y0 = int64_t(y0f), x0 = int64_t(x0f);
        const float m = mod[tap * mask.c];
        if (y0 >= 0 && y0 + 1 < h && x0 >= 0 && x0 + 1 < w) {  // all 4 corners inside (most)
          const float w00 = (1.f - fy) * (1.f - fx) * m, w01 = (1.f - fy) * fx * m;
          const float w10 = fy * (1.f - fx) * m, w11 = fy * fx * m;
          const float* a = image + (y0 * w + x0) * c;
          blend(dst, a, a + c, a + w * c, a + w * c + c, w00, w01, w10, w11, c);
          continue;
        }
        const bool top = y0 >= 0, bottom = y0 + 1 < h, left = x0 >= 0, right = x0 + 1 < w;
        // A corner outside the image has weight 0 and reads a corner inside (any valid row).
        const float w00 = top && left ? (1.f - fy) * (1.f - fx) * m : 0.f;
        const float w01 = top && right ? (1.f - fy) * fx * m : 0.f;
        const float w10 = bottom && left ? fy * (1.f - fx) * m : 0.f;
        const float w11 = bottom && right ? fy * fx * m : 0.f;
        const int64_t yt = top ? y0 : y0 + 1, yb = bottom ? y0 + 1 : y0;
        const int64_t xl = left ? x0 : x0 + 1, xr = right ? x0 + 1 : x0;
        blend(dst, image + (yt * w + xl) * c, image + (yt * w + xr) * c, image + (yb * w + xl) * c,
              image + (yb * w + xr) * c, w00, w01, w10, w11, c);
      }
    }
    if (++xx == w) {
      xx = 0;
      if (++y == h) y = 0, ++n;
    }
  }
}

// The product of a tile's columns with the weight. It was oneDNN's 1x1 convolution, called per
// tile: each call reordered the weight into oneDNN's blocked layout again (the whole weight per
// tile of 1,024 pixels, or of 128 on a 16 x 16 layer), which made the product 1.2-1.7x a dense 3x3
// conv's time on DLA-34's layers. Packed once per call and multiplied by this kernel, the product
// runs at the dense conv's rate (DLA-34's DCN layers at 512 x 512, both threads of this 2-core
// AVX-512 CPU: the whole op 0.83-0.94x the oneDNN version's time, 0.87x over the 16 layers;
// CenterMask 0.95x).
// Vectors are GCC's (AVX-512 with -march=native where the CPU has it, else 8 lanes).
#if defined(__AVX512F__)
#define D2_INSTSEG_LANES 16
constexpr int64_t kRows = 8;  // 8 x 2 accumulators of 16 floats: 16 of the 32 vector registers
#else
#define D2_INSTSEG_LANES 8
constexpr int64_t kRows = 6;  // 6 x 2 accumulators of 8 floats: 12 of the 16 vector registers
#endif
// Unaligned, and allowed to alias the floats it is loaded from (as the intrinsics' types are).
typedef float vec __attribute__((vector_size(D2_INSTSEG_LANES * 4), aligned(4), __may_alias__));
constexpr int64_t kLanes = D2_INSTSEG_LANES, kCols = 2 * D2_INSTSEG_LANES;

inline vec load(const float* p) { return *reinterpret_cast<const vec*>(p); }
inline void store(float* p, const vec& v) { *reinterpret_cast<vec*>(p) = v; }

// out[r][o] = bias[o] + sum_q col[r][q] * panel[q][o] for r < rows (of kRows computed; col holds
// kRows rows of `depth` values) and o < cols (of the panel's kCols outputs); ldo: out's row stride.
// (8 x 32 and 12 x 32 blocks measured equal, 6 x 64 1% faster, 4 x 64 1.26x slower.)
inline void micro_kernel(const float* __restrict col, int64_t depth, const float* __restrict panel,
                         const float* __restrict bias, float* __restrict out, int64_t ldo,
                         int64_t rows, int64_t cols) {
  vec acc[kRows][2];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kRows; ++r) acc[r][0] = load(bias), acc[r][1] = load(bias + kLanes);
  for (int64_t q = 0; q < depth; ++q) {
    const vec w0 = load(panel + q * kCols), w1 = load(panel + q * kCols + kLanes);
#pragma GCC unroll 8
    for (int64_t r = 0; r < kRows; ++r) {
      const float a = col[r * depth + q];
      acc[r][0] += a * w0;
      acc[r][1] += a * w1;
    }
  }
  if (rows == kRows && cols == kCols) {
#pragma GCC unroll 8
    for (int64_t r = 0; r < kRows; ++r) {
      store(out + r * ldo, acc[r][0]);
      store(out + r * ldo + kLanes, acc[r][1]);
    }
    return;
  }
  float block[kRows][kCols];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kRows; ++r) {
    store(block[r], acc[r][0]);
    store(block[r] + kLanes, acc[r][1]);
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < cols; ++o) out[r * ldo + o] = block[r][o];
}

// (C_out, C, kh, kw) weight -> (panels, K * C, kCols): panel p holds outputs [p * kCols,
// (p + 1) * kCols), zero beyond C_out, its rows in the columns' (kernel position, channel) order.
at::Tensor pack_weight(const at::Tensor& weight) {
  const int64_t c_out = weight.size(0), c = weight.size(1), k = weight.size(2) * weight.size(3);
  const int64_t depth = k * c, panels = (c_out + kCols - 1) / kCols;
  // Read in place (channels-last weights of a channels-last model are not copied first).
  const int64_t kw = weight.size(3), so = weight.stride(0), sc = weight.stride(1);
  const int64_t si = weight.stride(2), sj = weight.stride(3);
  at::Tensor packed = at::empty({panels, depth, kCols}, weight.options());
  const float* src = weight.data_ptr<float>();
  float* dst = packed.data_ptr<float>();
  at::parallel_for(0, panels * depth, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t p = i / depth, q = i % depth, tap = q / c, ch = q % c;
      const float* tap_src = src + ch * sc + (tap / kw) * si + (tap % kw) * sj;
      for (int64_t j = 0; j < kCols; ++j) {
        const int64_t o = p * kCols + j;
        dst[i * kCols + j] = o < c_out ? tap_src[o * so] : 0.f;
      }
    }
  });
  return packed;
}

at::Tensor modulated_deform_conv2d_forward(const at::Tensor& input, const at::Tensor& offset,
                                           const at::Tensor& weight,
                                           const c10::optional<at::Tensor>& bias,
                                           const at::Tensor& mask, int64_t padding,
                                           int64_t dilation) {
  TORCH_CHECK(input.scalar_type() == at::kFloat && offset.scalar_type() == at::kFloat &&
                  weight.scalar_type() == at::kFloat && mask.scalar_type() == at::kFloat,
              "modulated_deform_conv2d_forward: float32 tensors expected");
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t c_out = weight.size(0), kh = weight.size(2), kw = weight.size(3), k = kh * kw;
  TORCH_CHECK(weight.size(1) == c && offset.sizes() == at::IntArrayRef({n, 2 * k, h, w}) &&
                  mask.sizes() == at::IntArrayRef({n, k, h, w}),
              "modulated_deform_conv2d_forward: input ", input.sizes(), ", weight ",
              weight.sizes(), ", offset ", offset.sizes(), ", mask ", mask.sizes());
  const at::Tensor x = input.permute({0, 2, 3, 1}).contiguous();  // (N, H, W, C)
  const at::Tensor packed = pack_weight(weight);  // (panels, K * C, kCols)
  const int64_t panels = packed.size(0), depth = packed.size(1);
  at::Tensor shift = at::zeros({panels * kCols}, input.options());
  if (bias.has_value() && bias->defined()) shift.narrow(0, 0, c_out).copy_(*bias);
  const int64_t total = n * h * w;
  at::Tensor out = at::empty({total, c_out}, input.options());  // (N * H * W, C_out)
  // Tiles whose columns take about 256 KiB (a quarter of this CPU's L2; 64 KiB to 256 KiB
  // measured equal, 1 MiB 3% and 4 MiB 7% slower), in whole kRows blocks, and at least one tile
  // per thread (with 4096-pixel tiles a 32 x 32 layer ran on one thread, 3x slower).
  const int64_t budget = std::max<int64_t>(1, (int64_t(256) << 10) / (4 * depth) / kRows) * kRows;
  const int64_t tiles = std::max<int64_t>((total + budget - 1) / budget, at::get_num_threads());
  const int64_t tile = (total + tiles - 1) / tiles;
  const int64_t tile_rows = (tile + kRows - 1) / kRows * kRows;
  const float* xp = x.data_ptr<float>();
  const Strided off(offset), mod(mask);
  const float* wp = packed.data_ptr<float>();
  const float* sp = shift.data_ptr<float>();
  float* outp = out.data_ptr<float>();
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    std::unique_ptr<float[]> col(new float[tile_rows * depth]);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t first = i * tile, count = std::min(tile, total - first);
      if (count <= 0) break;
      fill_columns(xp, off, mod, col.get(), first, count, h, w, c, kh, kw, padding, dilation);
      // The last block's rows past `count` are multiplied and dropped: zeros, not stale values.
      const int64_t rows = (count + kRows - 1) / kRows * kRows;
      std::fill(col.get() + count * depth, col.get() + rows * depth, 0.f);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t cols = std::min(kCols, c_out - p * kCols);
        for (int64_t r = 0; r < count; r += kRows)
          micro_kernel(col.get() + r * depth, depth, wp + p * depth * kCols, sp + p * kCols,
                       outp + (first + r) * c_out + p * kCols, c_out, std::min(kRows, count - r),
                       cols);
      }
    }
  });
  return out.view({n, h, w, c_out}).permute({0, 3, 1, 2});  // channels-last (N, C_out, H, W)
}

}  // namespace

TORCH_LIBRARY(d2_instseg, m) {
  m.def(
      "modulated_deform_conv2d_forward(Tensor input, Tensor offset, Tensor weight, Tensor? bias, "
      "Tensor mask, int padding, int dilation) -> Tensor");
}

TORCH_LIBRARY_IMPL(d2_instseg, CPU, m) {
  m.impl("modulated_deform_conv2d_forward", &modulated_deform_conv2d_forward);
}
