"""Public building blocks, documented and unit-tested, usable in other models."""

from .affinity import affinity_loss, ideal_affinity_map  # noqa: F401  (CPNet; any pairwise prior)
from .centernet import (  # noqa: F401  (CenterMask; any CenterNet-style keypoint detector)
    centernet_focal_loss,
    draw_gaussians,
    gaussian_radius,
    integer_gaussian_radius,
)
from .conv import conv_norm_act  # noqa: F401  (every backbone and head of the package)
from .cross_entropy import cross_entropy_ignore  # noqa: F401  (FCN, UNet, CPNet heads)
from .deform_conv import modulated_deform_conv2d  # noqa: F401  (DLA-34 IDA-up; any DCNv2 layer)
from .erfnet_blocks import (  # noqa: F401  (ERFNet backbone, Spatial Embeddings decoder)
    DownsamplerBlock,
    NonBottleneck1d,
    UpsamplerBlock,
)
from .fuse import fold_bn_into_conv, fuse_conv_bn  # noqa: F401  (inference: Predictor, benchmark)
from .lovasz import lovasz_grad, lovasz_hinge  # noqa: F401  (Spatial Embeddings; any mask IoU loss)
from .native import native_ops_available  # noqa: F401  (native CPU kernels: DCN inference)
from .paste import paste_masks  # noqa: F401  (CenterMask inference; any box-relative mask head)
from .resize import resize_and_crop  # noqa: F401  (CPNet, FCN, UNet, IRNet: coarse maps to size)
from .roi_align import (  # noqa: F401  (Mask R-CNN's RoI heads on CPU: Trainer, Predictor)
    ROIAlignGather,
    roi_align_gather,
    use_gather_roi_align,
)
from .upsample import BilinearUpsample, bilinear_kernel  # noqa: F401  (DLA's IDA-up)
from .windows import window_starts  # noqa: F401  (CPNet sliding window, tiled inference)
