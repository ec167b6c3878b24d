"""IRNet (Ahn, Cho, Kwak, CVPR 2019) as a workflow: instance segmentation from image-level labels.

``d2_instseg.irnet.pipeline.IRNetPipeline`` runs the steps of ``d2_instseg.irnet.steps.STEPS``
(``tools/irnet_pipeline.py``): the CAM network and IRNet (models in ``d2_instseg.modeling.irnet``),
relation labels, label synthesis, and Detectron2's Mask R-CNN trained on the pseudo labels; see
docs/irnet.md. Importing this package registers only its config keys (MODEL.IRNET.PIPELINE): the
workflow's modules load when a tool imports them.
"""

from . import config  # noqa: F401  (registers MODEL.IRNET.PIPELINE)
