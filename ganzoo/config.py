"""Hydra schemas: the typed top level of each command's config, registered in Hydra's ConfigStore.

Imported by `conf/__init__.py`, so every entry point that reads `pkg://ganzoo.conf` has the schemas.
The `model` and `dataset` nodes are free-form here (each YAML is its own schema: Hydra's struct mode
rejects unknown keys) and are checked against the model constructor / dataset builder signature when
the run is built (`ganzoo.build`).
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf reads these forms

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .settings import OptimSettings, TrainerSettings


@dataclass
class TrainConfig:
    model: Any = MISSING
    dataset: Any = MISSING
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    seed: int = 0
    resume: Optional[str] = None  # noqa: UP045 - a run folder to continue
    resume_force: bool = False  # allow resuming under a different model, dataset or data shape
    overwrite: bool = False  # start afresh in a folder that holds a run (its checkpoints and logs are deleted)


@dataclass
class SampleConfig:
    run: Optional[str] = None  # noqa: UP045 - a run folder made by `ganzoo train` (or weights=)
    weights: Optional[str] = None  # noqa: UP045 - a .safetensors file written by `ganzoo export`
    n: int = 64
    out: Optional[str] = None  # noqa: UP045 - a .png (one grid) or a folder (one PNG per image)
    seed: int = 0
    ema: bool = True  # use the EMA generator when the run has one
    nrow: Optional[int] = None  # noqa: UP045
    labels: Optional[List[int]] = None  # noqa: UP006, UP045 - class labels for conditional models
    per_class: Optional[int] = None  # noqa: UP045 - conditional models: this many per class, one row each
    traverse: Optional[str] = None  # noqa: UP045 - a continuous code (c2, c3, ...): rows c1, columns code -2..2
    batch_size: int = 256
    device: str = "auto"


@dataclass
class EvalConfig:
    run: str = MISSING  # a run folder made by `ganzoo train`
    n_per_class: int = 1000  # generated samples per class (unconditional models: n_per_class x classes)
    batch_size: int = 500
    device: str = "auto"
    # the JSON file (default <run>/metrics.json; with data=<folder>: <run>/metrics_<folder>.json)
    out: Optional[str] = None  # noqa: UP045
    judge_epochs: int = 2  # epochs of the judge classifier (trained once per dataset, cached)
    seed: int = 0
    data: Optional[str] = None  # noqa: UP045 - super-resolution runs: a folder of HR images (default: the test split)
    metrics: Optional[List[str]] = None  # noqa: UP006, UP045 - suites by name, e.g. [fid,kid] (default: the model's own)
    n_samples: int = 10000  # fid/kid/is/pr: generated images (translators: up to this many test images)
    reference: str = "train"  # fid/kid/pr of generators: the real split compared with (train | test)
    feature_extractor: str = "inception"  # fid/kid/is/pr network: inception | judge (stand-in for digit sets)
    inception_weights: Optional[str] = None  # noqa: UP045 - the FID Inception .pth (default: the data home's copy)
    step: Optional[int] = None  # noqa: UP045 - evaluate the checkpoint of this step (default: the newest)
    ema: bool = True  # score the EMA weights when the run kept them (false: the live ones, into metrics_live.json)


@dataclass
class ReportConfig:
    run: Optional[str] = None  # noqa: UP045 - a run folder made by `ganzoo train`
    sweep: Optional[str] = None  # noqa: UP045 - a sweep folder made by `ganzoo train -m` (multirun/<time>)
    sort: Optional[str] = None  # noqa: UP045 - sweep: the metric to sort the jobs by (default: the first evaluation metric)
    order: Optional[str] = None  # noqa: UP045 - sweep: min (lowest first) | max; default from the metric's name


@dataclass
class TranslateConfig:
    input: str = MISSING  # an image file or a folder of images (recursive)
    out: Optional[str] = None  # noqa: UP045 - output folder (default <run>/translated); a file for one image
    run: Optional[str] = None  # noqa: UP045 - a run folder made by `ganzoo train` (or weights=)
    weights: Optional[str] = None  # noqa: UP045 - an official generator: .pth file or download name
    direction: Optional[str] = None  # noqa: UP045 - AtoB | BtoA (default: the run's model.direction)
    batch_size: int = 8
    device: str = "auto"
    ema: bool = True  # use the EMA generator when the run has one
    seed: int = 0  # pix2pix keeps dropout on at inference: the seed makes it repeatable
    resize: Any = None  # none: keep each image's size (mirror-padded to the net's multiple); 256: the reference's
    #   test pipeline (bicubic resize to 256x256, test.py's --load_size)
    rounding: str = "truncate"  # truncate: as the reference's util.tensor2im; round: nearest level
    max_pixels: int = 4194304  # an untiled model (pix2pix, CycleGAN) refuses a larger input (after resize)
    # `model=cyclegan|pix2pix` (with weights=) selects conf/model/<name>.yaml: only model.name is read;
    # the training defaults that file also sets (optim, trainer, its default dataset) are accepted and ignored
    model: Any = None
    dataset: Any = None
    optim: Any = None
    trainer: Any = None


@dataclass
class ExportConfig:
    run: str = MISSING  # a run folder made by `ganzoo train`
    format: str = MISSING  # onnx | torchscript | safetensors
    out: Optional[str] = None  # noqa: UP045 - a file (.onnx, .pt, .safetensors) or a folder (default <run>/export)
    ema: bool = True  # export the EMA weights when the run has them
    atol: float = 1e-4  # the largest abs difference from the PyTorch model the check accepts (images in [-1, 1])
    seed: int = 0  # the fixed inputs of the check


@dataclass
class ServeConfig:
    run: Optional[str] = None  # noqa: UP045 - a run folder made by `ganzoo train` (or weights=)
    weights: Optional[str] = None  # noqa: UP045 - a .safetensors file written by `ganzoo export`
    host: str = "127.0.0.1"  # localhost only; 0.0.0.0 exposes the page to the network (see docs/deploy.md)
    port: int = 7860
    ema: bool = True
    device: str = "auto"
    max_upload_mb: int = 20  # uploads above this are refused (413)
    max_pixels: int = 4194304  # an untiled translator refuses a larger image (413); tiled ones take any size
    max_grid: int = 64  # most images one grid request may ask for


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sample_schema", node=SampleConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="report_schema", node=ReportConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(name="trainer_schema", node=TrainerSettings)
    cs.store(name="optim_schema", node=OptimSettings)
