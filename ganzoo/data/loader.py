"""The batch stream: an endless, seeded, exactly resumable source of training batches.

Order and augmentation are pure functions of (seed, epoch): each epoch's permutation, flips and crop
offsets come from a generator seeded with both, so the stream position is just (epoch, index) and a
resumed run sees exactly the batches the uninterrupted run would have seen — with preloading and with
DataLoader workers alike. Batches are dicts {"image": float [B, C, R, R] in [-1, 1], "label": int64 [B]}
on the training device.

Small datasets are preloaded once as uint8 tensors on the device and indexed there (no workers, no
host-device copies per step); large ones are decoded by DataLoader workers into pinned memory.
Crop and flip run on the device for both paths.

A worker that hangs longer than `worker_timeout` for one batch, or dies (killed by a signal, e.g. by
the out-of-memory killer, or exiting unexpectedly), becomes a one-line `DataError` naming the cause
and the fix; the stream's position stays at the last batch it returned, so `state()` then resumes
exactly. Errors raised by the dataset itself inside a worker (a corrupt file) are re-raised by
DataLoader as they are.

Semi-supervised runs (`labeled_subset`): a fixed set of dataset indices (see `balanced_subset`) is
gathered once onto the device, and each batch also carries "image_l"/"label_l", a batch of that subset
only. The labeled stream is the concatenation of seeded permutations of the subset (permutation `e` is
a pure function of (seed, e), as the epochs above), so its position is one counter, saved by `state()`
and restored by `load_state()`. In this mode the unlabeled "image" batches carry no "label": the only
labels a model can see are the subset's.

Two-domain (image-to-image) sets carry "A" and "B" instead of "image" (see data/base.py). Aligned
(paired) sets: B gets A's crop and flip, so a pair stays a pair. Unaligned sets: the epoch plan also
draws, from the same (seed, epoch) generator, the B item of every position (a concatenation of seeded
permutations of the B domain, as long as the epoch) and B's own crops and flips, so B is drawn
independently of A (as the official code's random B index) and resume stays exact. Items may be
non-square (H x W, e.g. `scale_width_and_crop`); the crop to the square training resolution then
draws its top and left offsets from their own ranges.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Sampler

from .base import Augment, DataError, ImageDataset


@dataclass
class _Epoch:
    perm: torch.Tensor  # int64 [N] (CPU)
    flip: torch.Tensor  # bool [N], by position in the epoch
    offset: torch.Tensor  # int64 [N, 2] crop (top, left), by position in the epoch
    b_index: torch.Tensor | None = None  # unaligned two-domain sets: int64 [N] B item of each position
    b_flip: torch.Tensor | None = None  # bool [N]: B's own flips
    b_offset: torch.Tensor | None = None  # int64 [N, 2]: B's own crop offsets


B_KEYS = ("B", "label_b")  # fields of an unaligned set's B domain: indexed by the epoch's `b_index`
_IMAGE_KEYS = ("image", "A", "B")


class _Positions(Sampler):
    """Batches of indices perm[start:] for DataLoader workers; (A index, B index) pairs when the
    epoch draws B independently (an unaligned dataset reads `dataset[(i, j)]`)."""

    def __init__(self, perm: torch.Tensor, start: int, batch_size: int, b_index: torch.Tensor | None = None,
                 shard: slice = slice(None)):
        self.perm, self.start, self.batch_size, self.b_index = perm, start, batch_size, b_index
        self.shard = shard  # this rank's stride of each global batch (data-parallel runs)

    def __iter__(self):
        for i in range(self.start, len(self.perm) - self.batch_size + 1, self.batch_size):
            idx = self.perm[i : i + self.batch_size][self.shard].tolist()
            if self.b_index is None:
                yield idx
            else:
                yield list(zip(idx, self.b_index[i : i + self.batch_size][self.shard].tolist()))

    def __len__(self) -> int:
        return (len(self.perm) - self.start) // self.batch_size


_TIMED_OUT = re.compile(r"DataLoader timed out after")
_KILLED = re.compile(r"DataLoader worker \(pid \d+\) is killed by signal: ([^.]+)")
_EXIT_CODE = re.compile(r"DataLoader worker \(pid \d+\) exited unexpectedly with exit code (-?\d+)")
_EXITED = re.compile(r"DataLoader worker \(pid\(s\) [\d, ]+\) exited unexpectedly")


def _signal(description: str) -> signal.Signals | None:
    """The signal whose strsignal text is `description` ("Killed" -> SIGKILL); None if unknown."""
    for sig in signal.Signals:
        try:
            if signal.strsignal(sig) == description:
                return sig
        except (ValueError, OSError):
            continue
    return None


def worker_failure(e: BaseException, worker_timeout: float) -> str | None:
    """A one-line message (cause and fix) for a DataLoader worker that timed out or died; None for
    any other error. DataLoader chains "exited unexpectedly" to the SIGCHLD handler's message, which
    says which signal, so the chain is searched."""
    if not isinstance(e, RuntimeError):
        return None
    texts, seen = [], e
    while seen is not None and len(texts) < 5:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = " | ".join(texts)
    if _TIMED_OUT.match(texts[0]):
        return (f"a DataLoader worker took longer than trainer.worker_timeout={worker_timeout:g}s for one batch "
                "(a hung read?): raise trainer.worker_timeout, or set trainer.num_workers=0 to debug")
    if not (_KILLED.search(texts[0]) or _EXIT_CODE.search(texts[0]) or _EXITED.search(texts[0])):
        return None
    killed, code = _KILLED.search(text), _EXIT_CODE.search(text)
    if killed:
        desc = killed.group(1).strip()
        sig = _signal(desc)
        died = f"a DataLoader worker died (killed by signal {f'{int(sig)} ({sig.name})' if sig else desc})"
        if sig == signal.SIGKILL:
            return f"{died}: out of memory? lower trainer.num_workers or trainer.batch_size"
        if sig == getattr(signal, "SIGBUS", None):
            return (f"{died}: out of shared memory? raise the /dev/shm size (docker --shm-size) or lower "
                    "trainer.num_workers")
        return f"{died}: a crash while decoding? set trainer.num_workers=0 to see where"
    how = f" (exit code {code.group(1)})" if code else ""
    return (f"a DataLoader worker exited unexpectedly{how}: out of memory? lower trainer.num_workers or "
            "trainer.batch_size, or set trainer.num_workers=0 to see the error")


def _shutdown(it) -> None:
    """Stop a failed DataLoader iterator's workers now (a hung one is terminated), rather than when
    the garbage collector gets to it; this also unregisters them from the SIGCHLD handler."""
    stop = getattr(it, "_shutdown_workers", None)
    if stop is not None:
        try:
            stop()
        except Exception:  # noqa: BLE001 - best effort: the error being reported matters more
            pass


def _stack_all(dataset: ImageDataset, num_workers: int) -> dict[str, torch.Tensor]:
    if type(dataset).tensors is not ImageDataset.tensors or num_workers == 0:
        return dataset.tensors()
    parts: dict[str, list[torch.Tensor]] = {}
    it = iter(DataLoader(dataset, batch_size=256, num_workers=num_workers,
                         generator=torch.Generator().manual_seed(0)))
    failure = None
    try:
        for batch in it:
            for k, v in batch.items():
                parts.setdefault(k, []).append(v)
    except RuntimeError as e:
        failure = worker_failure(e, 0)
        if failure is None:
            raise
    if failure is not None:  # raised outside the except block: no chained traceback holds the iterator
        _shutdown(it)
        raise DataError(f"while preloading: {failure}")
    return {k: torch.cat(v) for k, v in parts.items()}


def item_room(dataset: ImageDataset, resolution: int) -> tuple[int, int]:
    """How far a crop to `resolution` can move down and right in the dataset's items (item_size is
    S for square items, or (H, W))."""
    s = dataset.item_size
    h, w = (s, s) if isinstance(s, int) else s
    return h - resolution, w - resolution


def crop_offsets(g: torch.Generator, n: int, room: tuple[int, int]) -> torch.Tensor:
    """n random crop offsets (top, left), int64 [n, 2]; square items keep the single draw they always had."""
    rh, rw = room
    if rh == rw:
        return torch.randint(0, rh + 1, (n, 2), generator=g)
    return torch.stack([torch.randint(0, rh + 1, (n,), generator=g), torch.randint(0, rw + 1, (n,), generator=g)], 1)


def augment_batch(images: torch.Tensor, aug: Augment, flip: torch.Tensor, offset: torch.Tensor,
                  resolution: int) -> torch.Tensor:
    """Crop [B, C, H, W] uint8 images at per-sample offsets to `resolution` and flip where `flip`."""
    if aug.crop is not None and tuple(images.shape[-2:]) != (resolution, resolution):
        b = images.shape[0]
        ar = torch.arange(resolution, device=images.device)
        rows = (offset[:, 0:1] + ar)[:, :, None]  # [B, R, 1]
        cols = (offset[:, 1:2] + ar)[:, None, :]  # [B, 1, R]
        idx = torch.arange(b, device=images.device)[:, None, None]
        images = images.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)  # [B, C, R, R]
    if aug.flip:
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def dataset_labels(dataset: ImageDataset) -> torch.Tensor:
    """All labels of a labeled dataset, int64 [N] (without decoding images where the dataset keeps them)."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        if not dataset.info.num_classes:
            raise DataError(f"dataset {dataset.info.name!r} has no labels: a labeled subset needs a labeled dataset")
        labels = torch.stack([dataset[i]["label"] for i in range(len(dataset))])
    return torch.as_tensor(labels, dtype=torch.int64).flatten()


LABELED_FIELDS = ("image", "image_l", "label_l")  # the batch fields of a semi-supervised training set


def with_labeled_subset(dataset: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    """The semi-supervised view of a labeled training set: the labels of a fixed, balanced subset
    only (`balanced_subset`). Its batches carry every image unlabeled ("image") and a labeled batch
    drawn from the subset ("image_l", "label_l"); `dataset.labeled_subset` holds the indices."""
    if not dataset.info.num_classes:
        raise DataError(f"dataset {dataset.info.name!r} has no labels: dataset.labels_per_class needs a labeled "
                        f"dataset (e.g. dataset=digits or dataset=mnist)")
    dataset.labeled_subset = balanced_subset(dataset_labels(dataset), per_class, seed, dataset.info.num_classes)
    dataset.info = replace(dataset.info, fields=LABELED_FIELDS)
    return dataset


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int, num_classes: int | None = None) -> torch.Tensor:
    """Indices of `per_class` examples of each class 0..K-1 (class-major), int64 [K * per_class].

    As openai/improved-gan: the training set is permuted by a generator seeded with `seed` alone (not the
    training seed) and the first `per_class` items of each class are kept, so the subset is a function
    of (labels, per_class, seed): the same for every training seed, another for another `seed`."""
    labels = torch.as_tensor(labels, dtype=torch.int64).flatten()
    k = int(num_classes) if num_classes else int(labels.max()) + 1
    if per_class < 1:
        raise DataError(f"labels_per_class={per_class}: keep at least one labeled example per class")
    perm = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[perm]
    picks = []
    for c in range(k):
        idx = perm[shuffled == c][:per_class]
        if idx.numel() < per_class:
            raise DataError(f"class {c} has {idx.numel()} examples, fewer than labels_per_class={per_class}: "
                            f"lower labels_per_class")
        picks.append(idx)
    return torch.cat(picks)


class BatchStream:
    def __init__(self, dataset: ImageDataset, *, batch_size: int, seed: int, device: torch.device,
                 preload: bool | None = None, preload_max_mb: int = 2048, num_workers: int = 0,
                 worker_timeout: float = 120.0, channels_last: bool = False,
                 labeled_subset: torch.Tensor | None = None, labeled_batch_size: int | None = None,
                 rank: int = 0, world: int = 1):
        """`labeled_subset` (default: the dataset's own, see `with_labeled_subset`): indices whose labels
        the run sees, drawn as "image_l"/"label_l" batches of `labeled_batch_size` (default batch_size).
        `rank`/`world` (data-parallel runs): `batch_size` is the global batch; every rank follows the same
        (seed, epoch) plan and takes its stride (rank, rank + world, ...) of each global batch, so the
        position, the state and resume are those of a one-process run."""
        n = len(dataset)
        if n < batch_size:
            raise DataError(f"dataset {dataset.info.name!r} has {n} items, fewer than trainer.batch_size="
                            f"{batch_size}: lower trainer.batch_size")
        for what, b in (("trainer.batch_size", batch_size), ("the labeled batch", labeled_batch_size or batch_size)):
            if b % world:
                raise DataError(f"{what} ({b}) does not divide over trainer.devices={world}: give a batch size "
                                f"that is a multiple of {world}")
        self.shard = slice(rank, None, world)
        self.dataset, self.batch_size, self.seed, self.device = dataset, batch_size, seed, device
        self.info, self.aug = dataset.info, dataset.augment
        self.num_workers, self.worker_timeout = num_workers, worker_timeout
        self.channels_last = channels_last
        # unaligned two-domain sets: B is drawn per position from its own `size_b` items (see _plan)
        self.unaligned = dataset.info.channels_b > 0 and not dataset.info.aligned
        self.size_b = int(getattr(dataset, "size_b", n))
        if preload is None:
            preload = dataset.nbytes() <= preload_max_mb * 2**20
        self.preloaded = preload
        self.data: dict[str, torch.Tensor] | None = None
        if preload:
            self.data = {k: v.to(device) for k, v in _stack_all(dataset, num_workers).items()}
        self.epoch, self.index = 0, 0
        self._ep: _Epoch | None = None
        self._ep_dev: dict[str, torch.Tensor] = {}
        self._it = None
        self.labeled: torch.Tensor | None = None  # dataset indices of the labeled subset (CPU)
        if labeled_subset is None:
            labeled_subset = dataset.labeled_subset
        if labeled_subset is not None:
            self._init_labeled(labeled_subset, labeled_batch_size or batch_size)

    def _init_labeled(self, subset: torch.Tensor, batch_size: int) -> None:
        subset = torch.as_tensor(subset, dtype=torch.int64).flatten().cpu()
        n = len(self.dataset)
        if subset.numel() == 0 or subset.min() < 0 or subset.max() >= n or subset.unique().numel() != subset.numel():
            raise DataError(f"the labeled subset must be distinct indices in 0..{n - 1}")
        if not self.info.num_classes:
            raise DataError(f"dataset {self.info.name!r} has no labels: a labeled subset needs a labeled dataset")
        self.labeled, self.labeled_batch_size = subset, batch_size
        if self.preloaded:
            dev_idx = subset.to(self.device)
            self._lab_data = {k: v[dev_idx] for k, v in self.data.items()}
        else:  # a few items, read once in this process
            items = [self.dataset[int(i)] for i in subset]
            self._lab_data = {k: torch.stack([it[k] for it in items]).to(self.device) for k in ("image", "label")}
        self.labeled_pos = 0  # labeled items drawn so far: permutation labeled_pos // M, position labeled_pos % M
        self._lab_plans: dict[int, dict[str, torch.Tensor]] = {}

    # -- position -------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def state(self) -> dict:
        if self.labeled is not None:
            return {"epoch": self.epoch, "index": self.index, "labeled_pos": self.labeled_pos}
        return {"epoch": self.epoch, "index": self.index}

    def load_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._ep, self._it = None, None
        if self.labeled is not None:
            self.labeled_pos = int(state.get("labeled_pos", 0))
            self._lab_plans = {}

    # -- epoch plan -----------------------------------------------------------------------------
    def _plan(self, epoch: int) -> _Epoch:
        n = len(self.dataset)
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        perm = torch.randperm(n, generator=g)
        flip = torch.rand(n, generator=g) < 0.5
        room = item_room(self.dataset, self.info.resolution)
        offset = crop_offsets(g, n, room)
        if not self.unaligned:
            return _Epoch(perm, flip, offset)
        reps = -(-n // self.size_b)
        b_index = torch.cat([torch.randperm(self.size_b, generator=g) for _ in range(reps)])[:n]
        b_flip = torch.rand(n, generator=g) < 0.5
        return _Epoch(perm, flip, offset, b_index, b_flip, crop_offsets(g, n, room))

    def _labeled_plan(self, e: int) -> dict[str, torch.Tensor]:
        """Permutation e of the labeled subset, with its flips and crop offsets (on the device); a pure
        function of (seed, e), from a generator of its own (the unlabeled plans and the global RNG are
        untouched)."""
        if e not in self._lab_plans:
            m = self.labeled.numel()
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + e + 0x5EED_1ABE1) % 2**63)
            perm = torch.randperm(m, generator=g)
            flip = torch.rand(m, generator=g) < 0.5
            offset = crop_offsets(g, m, item_room(self.dataset, self.info.resolution))
            self._lab_plans = {k: v for k, v in self._lab_plans.items() if k >= e - 1}  # keep it small
            self._lab_plans[e] = {k: v.to(self.device) for k, v in (("perm", perm), ("flip", flip), ("offset", offset))}
        return self._lab_plans[e]

    def _next_labeled(self) -> dict[str, torch.Tensor]:
        """The next labeled batch: positions labeled_pos .. labeled_pos + B of the concatenated permutations
        (a batch may span two or more of them when the subset is smaller than the batch)."""
        m, b = self.labeled.numel(), self.labeled_batch_size
        parts: dict[str, list[torch.Tensor]] = {"perm": [], "flip": [], "offset": []}
        pos, end = self.labeled_pos, self.labeled_pos + b
        while pos < end:
            e, i = divmod(pos, m)
            j = min(m, i + end - pos)
            plan = self._labeled_plan(e)
            for k in parts:
                parts[k].append(plan[k][i:j])
            pos += j - i
        cat = {k: (torch.cat(v) if len(v) > 1 else v[0])[self.shard] for k, v in parts.items()}
        img = to_float(augment_batch(self._lab_data["image"][cat["perm"]], self.aug, cat["flip"], cat["offset"],
                                     self.info.resolution))
        if self.channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        self.labeled_pos = end
        return {"image_l": img, "label_l": self._lab_data["label"][cat["perm"]].long()}

    def _loader_generator(self) -> torch.Generator:
        # DataLoader draws its workers' base seed from this generator; from the global RNG instead, a
        # resumed run (which starts an iterator mid-epoch) would shift every later random draw
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63 + 1)

    def _start_epoch(self) -> None:
        self._ep = self._plan(self.epoch)
        nb = self.device.type == "cuda"
        self._ep_dev = {k: getattr(self._ep, k).to(self.device, non_blocking=nb)
                        for k in ("perm", "flip", "offset", "b_index", "b_flip", "b_offset")
                        if getattr(self._ep, k) is not None}
        self._it = None
        if not self.preloaded:
            positions = _Positions(self._ep.perm, self.index, self.batch_size, self._ep.b_index, self.shard)
            loader = DataLoader(self.dataset, generator=self._loader_generator(), batch_sampler=positions,
                                num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                timeout=self.worker_timeout if self.num_workers > 0 else 0)
            self._it = iter(loader)

    # -- batches --------------------------------------------------------------------------------
    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.index + self.batch_size > len(self.dataset):
            self.epoch, self.index = self.epoch + 1, 0
            self._ep = None
        if self._ep is None:
            self._start_epoch()
        i, b = self.index, self.batch_size
        pos = slice(i, i + b)
        ep = self._ep_dev

        def mine(key: str) -> torch.Tensor:  # this rank's stride of the global batch
            return ep[key][pos][self.shard]

        if self.preloaded:
            idx = mine("perm")
            b_idx = mine("b_index") if self.unaligned else idx
            raw = {k: v[b_idx if k in B_KEYS else idx] for k, v in self.data.items()}
        else:
            raw = {k: v.to(self.device, non_blocking=True) for k, v in self._next_from_workers().items()}
        self.index += b
        b_aug = (mine("b_flip"), mine("b_offset")) if self.unaligned else None
        out = self._finish(raw, mine("flip"), mine("offset"), b_aug)
        if self.labeled is not None:
            out.update(self._next_labeled())
        return out

    def _next_from_workers(self) -> dict[str, torch.Tensor]:
        """The next batch from the DataLoader; a hung or dead worker becomes a one-line DataError and
        drops the iterator (the position is unchanged, so the next call or a resume starts afresh)."""
        it, failure = self._it, None
        try:
            return next(it)
        except DataError as e:  # raised in a worker: DataLoader prefixes the worker's traceback
            lines = [x for x in str(e).splitlines() if x.strip()]
            raise DataError(lines[-1].split("DataError: ", 1)[-1] if lines else str(e)) from None
        except RuntimeError as e:
            failure = worker_failure(e, self.worker_timeout)
            if failure is None:
                raise
        self._it, self._ep = None, None  # raised outside the except block (see _stack_all)
        _shutdown(it)
        raise DataError(failure)

    def _finish(self, raw: dict, flip: torch.Tensor, offset: torch.Tensor,
                b_aug: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """uint8 items -> augmented float batch; B gets A's crop and flip unless `b_aug` (its own) is given."""
        out = {}
        for k in _IMAGE_KEYS:
            if k not in raw:
                continue
            f, o = b_aug if (k == "B" and b_aug is not None) else (flip, offset)
            img = to_float(augment_batch(raw[k], self.aug, f, o, self.info.resolution))
            if self.channels_last:
                img = img.contiguous(memory_format=torch.channels_last)
            out[k] = img
        for k in ("label", "label_b"):
            if k in raw and self.labeled is None:  # semi-supervised: labels only through "label_l"
                out[k] = raw[k].long()
        return out

    def fixed_batch(self, n: int) -> dict[str, torch.Tensor]:
        """n items chosen by a fixed seed, centre-cropped, unflipped (preview grids); no state change.
        Unaligned sets pair item i's A with B item i % size_b, in both paths (see data/base.py)."""
        n = min(n, len(self.dataset))
        idx = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed))[:n]
        if self.preloaded:
            raw = {k: v[idx.to(self.device)] for k, v in self.data.items()}
        else:
            items = [self.dataset[int(i)] for i in idx]
            raw = {k: torch.stack([it[k] for it in items]).to(self.device) for k in items[0]}
        rh, rw = item_room(self.dataset, self.info.resolution)
        offset = torch.tensor([[rh // 2, rw // 2]], device=self.device).expand(n, 2)
        return self._finish(raw, torch.zeros(n, dtype=torch.bool, device=self.device), offset)
