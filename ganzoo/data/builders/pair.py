"""`pair`: an unpaired two-domain set made of two registered datasets (A = one, B = another), for the
unpaired families (CycleGAN, CoGAN, UNIT, DTN): `dataset=pair dataset.A=mnist dataset.B=svhn`.

`A` and `B` name dataset configs (conf/dataset/<name>.yaml, read as the side's defaults); `A_args` /
`B_args` override their keys (`+dataset.B_args.num_train=5000`); `root` and `download`, when set,
go to every side that downloads (a builder taking `download`: mnist, svhn, usps, ...) unless its args
set them; the built-in `digits` keeps its own cache home (a read-only MNIST folder is no cache). Each side is built for the same split
at `resolution` (passed to a side that takes it, else its images are resized: antialiased bicubic), so
both domains come out square at the training resolution.

- channels: by default each domain keeps its own (grey MNIST 1, RGB SVHN 3: `channels` / `channels_b`);
  `channels=1|3` converts both (grey -> RGB repeats the channel; RGB -> grey is ITU-R 601-2 luma,
  as PIL's "L").
- maps: `A_map` / `B_map` (`ganzoo.data.domains.DOMAIN_MAPS`: edges | negative) turn a side into its
  derived domain after the resize and the channel conversion.
- same source: when A and B are the same dataset with the same arguments, the source is built once
  and A takes the first half of its items, B the second, so no B is the map of an A; when B is then a
  map of that source and A is not, `DataInfo.domain_map` records the map (CoGAN's pixel agreement).
- labels: when both sides have classes and the same number of them, items are {"A", "B", "label" (A's
  class), "label_b" (B's class)}; otherwise the labels are dropped (a warning says why) and items are
  {"A", "B"}.

The set is a `TensorPairDataset`: both domains in memory as uint8 (meant for digit-sized sets), the
unaligned loader draws B independently of A from seeded per-epoch permutations, so the stream is
seeded and resumes exactly. The fingerprint covers both sides' fingerprints and every option here.
"""

from __future__ import annotations

import inspect
import warnings

import torch

from ganzoo.data.base import DataError, DataInfo, ImageDataset, fingerprint
from ganzoo.data.builders.torchvision_sets import resize_uint8
from ganzoo.data.builders.two_domain import TensorPairDataset
from ganzoo.data.domains import DOMAIN_MAPS
from ganzoo.data.files.verify import dataset_config, dataset_names
from ganzoo.registry import DATASETS, UnknownName

VERSION = 1  # bump when the conversions change (it is part of the fingerprint)
CHANNELS = (1, 3)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's RGB -> "L"
SUBSET_KEYS = ("labels_per_class", "label_seed")  # the semi-supervised view: not a side's option
# the two-domain builders, refused before they are built (any other that turns out two-domain is refused
# after: `_build_side` checks its DataInfo)
TWO_DOMAIN = ("aligned", "unaligned", "digits_pairs", "digits_unpaired")


def side_config(which: str, name: str, args: dict | None, *, root: str | None, download: bool | None,
                resolution: int) -> tuple[str, dict]:
    """(builder name, keyword args) of side `which` ("A"/"B"): conf/dataset/<name>.yaml with `args`
    on top; DataError (one line) for an unknown name, a two-domain or semi-supervised side, a bad key."""
    if not isinstance(name, str) or not name:
        raise DataError(f"dataset.{which}={name!r} must name a dataset config (one of {', '.join(_singles())})")
    cfg = dataset_config(name)
    if cfg is None:
        raise DataError(f"dataset.{which}={name!r} is not a dataset (known: {', '.join(_singles())})")
    builder_name = cfg.pop("name", None)
    if builder_name == "pair" or "A" in cfg:
        raise DataError(f"dataset.{which}={name} is itself a pair of datasets: name a single-domain dataset "
                        f"(e.g. {', '.join(_singles()[:6])})")
    if builder_name in TWO_DOMAIN:
        raise _two_domain(which, name)
    try:
        builder = DATASETS.get(builder_name)
    except UnknownName as e:
        raise DataError(f"dataset.{which}={name}: {e}") from None
    params = [k for k, p in inspect.signature(builder).parameters.items()
              if p.kind == p.KEYWORD_ONLY and k not in ("split", "seed")]
    args = dict(args or {})
    for key in args:
        if key not in params:
            raise DataError(f"dataset.{which}_args.{key} is not an option of dataset {name!r} "
                            f"(options: {', '.join(params)})")
    for key in SUBSET_KEYS:
        if key in cfg or key in args:
            raise DataError(f"dataset.{which}={name} is a semi-supervised view ({key}): name the plain dataset")
    merged = {k: v for k, v in cfg.items() if k in params}
    if "download" in params:  # a downloadable side: the pair's data home and download switch
        for key, value in (("root", root), ("download", download)):
            if value is not None and key in params and key not in args:
                merged[key] = value
    if "resolution" in params and "resolution" not in args:
        merged["resolution"] = int(resolution)
    merged.update(args)
    unset = [k for k, v in merged.items() if v == "???"]
    if unset:
        raise DataError(f"dataset.{which}={name} needs {unset[0]}: add +dataset.{which}_args.{unset[0]}=<value>")
    return builder_name, merged


def _singles() -> list[str]:
    """Dataset configs a side may name (the two-domain ones are left out of the lists in messages)."""
    return [n for n in dataset_names() if (dataset_config(n) or {}).get("name") not in (*TWO_DOMAIN, "pair")]


def _two_domain(which: str, name: str) -> DataError:
    return DataError(f"dataset.{which}={name} is a two-domain set: name a single-domain dataset "
                     f"(e.g. {', '.join(_singles()[:6])})")


def _build_side(which: str, name: str, builder_name: str, args: dict, split: str, seed: int) -> ImageDataset:
    try:
        data = DATASETS.get(builder_name)(split=split, seed=seed, **args)
    except DataError as e:
        raise DataError(f"dataset.{which}={name}: {e}") from None
    except TypeError as e:  # a value of the wrong type in the side's args
        raise DataError(f"dataset.{which}_args: {e}") from None
    if data.info.channels_b or "image" not in data.info.fields:
        raise _two_domain(which, name)
    return data


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 [N, C, H, W] with C in (1, 3) -> uint8 [N, channels, H, W] (None: as is)."""
    c = images.shape[1]
    if channels is None or channels == c:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"dataset.channels={channels} cannot convert {c}-channel images: use channels=null")


def _images(data: ImageDataset, resolution: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    t = data.tensors()
    images = t["image"]
    if tuple(images.shape[-2:]) != (resolution, resolution):
        images = resize_uint8(images, resolution)
    labels = t.get("label") if data.info.num_classes > 0 else None
    return images, labels


@DATASETS.register("pair")
def build_pair(*, split: str = "train", seed: int = 0, A: str = "digits", B: str = "mnist",
               A_args: dict | None = None, B_args: dict | None = None, resolution: int = 32,
               channels: int | None = None, A_map: str | None = None, B_map: str | None = None,
               root: str | None = None, download: bool | None = None) -> TensorPairDataset:
    """Unpaired A <-> B from two registered datasets (see the module docstring)."""
    resolution = int(resolution)
    if resolution < 8:
        raise DataError(f"dataset.resolution={resolution} must be at least 8")
    if channels is not None and channels not in CHANNELS:
        raise DataError(f"dataset.channels={channels} must be 1, 3 or null (each domain keeps its own)")
    for key, m in (("A_map", A_map), ("B_map", B_map)):
        if m is not None and m not in DOMAIN_MAPS:
            raise DataError(f"dataset.{key}={m!r} is not one of {', '.join(DOMAIN_MAPS)} (or null)")
    a_builder, a_args = side_config("A", A, A_args, root=root, download=download, resolution=resolution)
    b_builder, b_args = side_config("B", B, B_args, root=root, download=download, resolution=resolution)
    same = (a_builder, a_args) == (b_builder, b_args)
    data_a = _build_side("A", A, a_builder, a_args, split, seed)
    data_b = data_a if same else _build_side("B", B, b_builder, b_args, split, seed)
    a, label_a = _images(data_a, resolution)
    b, label_b = (a, label_a) if same else _images(data_b, resolution)
    if same:  # disjoint halves: no B is the map of an A
        half = a.shape[0] // 2
        if half < 1:
            raise DataError(f"dataset.A and dataset.B are both {A} with {a.shape[0]} item(s): two halves need at "
                            f"least 2")
        a, b = a[:half], b[half:]
        label_a, label_b = (None, None) if label_a is None else (label_a[:half], label_b[half:])
    a, b = convert_channels(a, channels), convert_channels(b, channels)
    if A_map:
        a = DOMAIN_MAPS[A_map](a)
    if B_map:
        b = DOMAIN_MAPS[B_map](b)
    ka, kb = data_a.info.num_classes, data_b.info.num_classes
    num_classes = ka if label_a is not None and label_b is not None and ka == kb else 0
    if num_classes == 0 and (label_a is not None or label_b is not None):
        why = f"{A} has {ka} classes and {B} {kb}" if ka and kb else f"{A if not ka else B} has no classes"
        warnings.warn(f"pair: the labels are dropped ({why}): items are A and B only, and evaluation by a "
                      f"classifier is off", stacklevel=2)
        label_a = label_b = None
    domain_map = B_map if same and B_map and not A_map else ""
    fp = fingerprint({"builder": "pair", "version": VERSION, "split": split, "A": data_a.info.fingerprint,
                      "B": data_b.info.fingerprint, "same": same, "resolution": resolution, "channels": channels,
                      "A_map": A_map, "B_map": B_map, "sizes": [a.shape[0], b.shape[0]]})
    fields = ("A", "B", "label", "label_b") if num_classes else ("A", "B")
    info = DataInfo(name="pair", channels=int(a.shape[1]), channels_b=int(b.shape[1]), aligned=False,
                    resolution=resolution, num_classes=num_classes, size=max(a.shape[0], b.shape[0]),
                    fields=fields, fingerprint=fp, domain_map=domain_map)
    return TensorPairDataset(info, a, b, label_a, label_b)
