// Modulated deformable convolution (DCNv2, stride 1, "same" output) for CPU inference, fused:
// the bilinear samples of a tile of output pixels are written into a small column block that
// stays in cache, and the block is multiplied by the weight right away. The Python path
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

namespace {

// Writes rows [first, first + count) of the (N * H * W, K * C) column matrix into col: row p is
// output pixel p's K samples of the (N, H, W, C) input x, each times its mask value.
void fill_columns(const float* __restrict x, const float* __restrict offset,
                  const float* __restrict mask, float* __restrict col, int64_t first,
                  int64_t count, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                  int64_t padding, int64_t dilation) {
  const int64_t k = kh * kw, hw = h * w;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t p = first + t, n = p / hw, yx = p % hw, y = yx / w, xx = yx % w;
    const float* image = x + n * hw * c;
    const float* off = offset + n * 2 * k * hw + yx;
    const float* mod = mask + n * k * hw + yx;
    for (int64_t tap = 0, i = 0; i < kh; ++i) {
      for (int64_t j = 0; j < kw; ++j, ++tap) {
        float* __restrict dst = col + (t * k + tap) * c;
        const float py = float(y - padding + i * dilation) + off[2 * tap * hw];
        const float px = float(xx - padding + j * dilation) + off[(2 * tap + 1) * hw];
        // Outside (-1, h) x (-1, w) every corner is outside the image; NaN fails the test too.
        if (!(py > -1.f && py < float(h) && px > -1.f && px < float(w))) {
          std::fill(dst, dst + c, 0.f);
          continue;
        }
        const float y0f = std::floor(py), x0f = std::floor(px), fy = py - y0f, fx = px - x0f;
        const int64_t y0 = int64_t(y0f), x0 = int64_t(x0f);
        const bool top = y0 >= 0, bottom = y0 + 1 < h, left = x0 >= 0, right = x0 + 1 < w;
        const float m = mod[tap * hw];
        // A corner outside the image has weight 0 and reads a corner inside (any valid row).
        const float w00 = top && left ? (1.f - fy) * (1.f - fx) * m : 0.f;
        const float w01 = top && right ? (1.f - fy) * fx * m : 0.f;
        const float w10 = bottom && left ? fy * (1.f - fx) * m : 0.f;
        const float w11 = bottom && right ? fy * fx * m : 0.f;
        const int64_t yt = top ? y0 : y0 + 1, yb = bottom ? y0 + 1 : y0;
        const int64_t xl = left ? x0 : x0 + 1, xr = right ? x0 + 1 : x0;
        const float* __restrict a = image + (yt * w + xl) * c;
        const float* __restrict b = image + (yt * w + xr) * c;
        const float* __restrict d = image + (yb * w + xl) * c;
        const float* __restrict e = image + (yb * w + xr) * c;
        for (int64_t ch = 0; ch < c; ++ch)
          dst[ch] = w00 * a[ch] + w01 * b[ch] + w10 * d[ch] + w11 * e[ch];
      }
    }
  }
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
  const at::Tensor off = offset.contiguous(), mod = mask.contiguous();
  // The product of a tile's columns with the weight is a 1x1 convolution (oneDNN's: 1.1-1.3x
  // faster than at::mm, whose MKL kernel takes its AVX2 path on this AMD CPU): weight as
  // (C_out, K * C, 1, 1), input channels in the columns' (kernel position, channel) order.
  const at::Tensor kernel =
      weight.permute({0, 2, 3, 1}).reshape({c_out, k * c, 1, 1}).contiguous();
  const int64_t total = n * h * w;
  at::Tensor out = at::empty({total, c_out}, input.options());
  // Tiles of at most 1024 pixels (measured at DLA-34's sizes: 512 and 1024 within 5%; 4096 10%
  // slower on the 128 x 128 layer, whose tiles then outgrow the cache), and at least one tile per
  // thread (with 4096-pixel tiles a 32 x 32 layer ran on one thread, 3x slower).
  const int64_t tiles = std::max<int64_t>((total + 1023) / 1024, at::get_num_threads());
  const int64_t tile = (total + tiles - 1) / tiles;
  const float* xp = x.data_ptr<float>();
  const float* op = off.data_ptr<float>();
  const float* mp = mod.data_ptr<float>();
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    // Grad mode is per thread and on by default in the workers; this forward records nothing.
    at::NoGradGuard no_grad;
    at::Tensor col = at::empty({tile, k * c}, input.options());
    for (int64_t i = begin; i < end; ++i) {
      const int64_t first = i * tile, count = std::min(tile, total - first);
      if (count <= 0) break;
      fill_columns(xp, op, mp, col.data_ptr<float>(), first, count, h, w, c, kh, kw, padding,
                   dilation);
      // (count, K * C) rows = a channels-last (1, K * C, 1, count) image.
      const at::Tensor image = col.narrow(0, 0, count).view({1, 1, count, k * c});
      const at::Tensor result = at::conv2d(image.permute({0, 3, 1, 2}), kernel, bias);
      out.narrow(0, first, count).copy_(result.permute({0, 2, 3, 1}).reshape({count, c_out}));
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
