from setuptools import find_packages, setup

setup(
    name="d2_instseg",
    version="0.1.0",
    description="Detectron2 plugin: CenterMask (point), Spatial Embeddings, CPNet, IRNet",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs")),
    python_requires=">=3.10",
    install_requires=[
        "fvcore",
        "pycocotools",
        "faster-coco-eval",
        "opencv-python-headless",
        "tqdm",
        "matplotlib",
        "shapely",
    ],
    # Cityscapes data and evaluation (Detectron2's loader and evaluators import it); the web app
    extras_require={
        "cityscapes": ["cityscapesscripts"],
        "serve": ["fastapi", "uvicorn", "python-multipart", "swagger-ui-bundle"],
    },
    # the native kernels' C++ source, compiled on first use (d2_instseg/layers/native.py)
    package_data={"d2_instseg.serve": ["static/*"], "d2_instseg.layers": ["csrc/*.cpp"]},
)
