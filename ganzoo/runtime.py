"""Process-level runtime helpers shared by every verb: the device, seeding, the global RNG state (saved
in checkpoints for exact resume) and stop requests by signal. Bottom layer: imports only `errors`."""

from __future__ import annotations

import random
import signal
import threading

import numpy as np
import torch

from .errors import UserError


def pick_device(name: str = "auto", key: str = "device") -> torch.device:
    """The device `name` names (auto: cuda > mps > cpu); one that this machine lacks is a UserError
    naming `key`, the setting it came from."""
    if name != "auto":
        dev = torch.device(name)
        if dev.type == "cuda" and not (torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()):
            what = ("no CUDA device is available" if not torch.cuda.is_available() else
                    f"this machine has {torch.cuda.device_count()} CUDA device(s)")
            raise UserError(f"{key}={name} but {what}: use {key}=auto or cpu")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                      and torch.backends.mps.is_available()):
            raise UserError(f"{key}={name} but no MPS device is available: use {key}=auto or cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively: a CUDA GPU that supports it (Ampere or newer), or a
    CPU with AVX512-BF16 or AMX tiles (oneDNN's bf16 kernels). Elsewhere bf16 autocast still runs, but
    emulated, and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def amp_choice(amp: str, device: torch.device, resolution: int | None = None, min_px: int = 0) -> tuple[str, str]:
    """(trainer.amp for this run, why, in words). auto is bf16 where it pays: the device computes bf16
    natively (`native_bf16`) and the images are at least `min_px` on a side (below that, the casts cost
    more than the bf16 kernels save on a CPU: benchmarks/README.md); float32 otherwise. none, bf16 and
    fp16 stay as given."""
    if amp not in ("none", "auto", "bf16", "fp16"):
        raise ValueError(f"unknown trainer.amp {amp!r} (known: none, auto, bf16, fp16)")
    if amp != "auto":
        return amp, f"trainer.amp={amp}"
    if not native_bf16(device):
        return "none", f"trainer.amp=auto: no native bf16 on {device.type}"
    if resolution is not None and resolution < min_px:
        return "none", f"trainer.amp=auto: {resolution} px is below trainer.amp_auto_min_px={min_px}"
    return "bf16", f"trainer.amp=auto: native bf16 on {device.type}"


def check_devices(devices: int, device: torch.device, batch_size: int, sync_bn: bool, world_size: int = 1) -> None:
    """`trainer.devices` against the machine and the batch (one line naming the fix). `world_size`: the
    processes an external launcher (torchrun) started, when it did."""
    if world_size > 1 and devices > 1:
        raise UserError(f"this process is one of {world_size} started by a launcher (WORLD_SIZE={world_size}): "
                        f"leave trainer.devices=1, the launcher made the processes")
    n = max(devices, world_size)
    if n > 1 and batch_size % n:
        raise UserError(f"trainer.batch_size={batch_size} is the global batch and does not divide over {n} processes: "
                        f"give a multiple of {n}")
    if n > 1 and device.type == "cuda" and (device.index or 0) + n > torch.cuda.device_count():
        raise UserError(f"trainer.devices={n} but this machine has {torch.cuda.device_count()} CUDA device(s): "
                        f"lower trainer.devices")
    if n > 1 and device.type not in ("cuda", "cpu"):
        raise UserError(f"trainer.devices={n} runs on CUDA or the CPU, not {device.type}: set trainer.device=cpu")
    if sync_bn and device.type != "cuda":
        raise UserError("trainer.sync_bn=true needs CUDA devices (torch's SyncBatchNorm): set trainer.sync_bn=false "
                        "(batch norm then uses each process's share of the batch)")


def rank_seed(seed: int, rank: int) -> int:
    """The random stream of data-parallel rank `rank` > 0 (rank 0 keeps the run's own `seed`)."""
    return (seed * 1_000_003 + 7919 * rank) % 2**63


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


class Interrupted(Exception):
    """Training stopped by a signal after saving a checkpoint; the process should exit 128 + signum.
    `then`: the handler the signal had before training took it over (a cluster launcher's, e.g.
    submitit's requeue on SIGUSR2), to be called once the checkpoint is safe (`hand_on`)."""

    def __init__(self, signum: int, then=None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.then = signum, then

    def hand_on(self) -> None:
        """Give the signal to the handler it had before training (if a Python one): submitit requeues
        the job there and exits, and the requeued job continues with resume=auto."""
        if callable(self.then):
            self.then(self.signum, None)


class StopRequest:
    """SIGINT, SIGTERM, SIGHUP (a closed terminal, a dropped SSH session), SIGUSR1 (Slurm's
    `--signal` before the time limit) and SIGUSR2 (submitit's preemption/timeout signal) only set a flag; the loop saves at the next step boundary.
    A second SIGINT raises KeyboardInterrupt at once (checkpoint writes are atomic, so nothing is
    corrupted). A signal the job was started with ignored stays ignored: `nohup` ignores SIGHUP so that a
    closed terminal does not stop the run, and a shell without job control ignores SIGINT in its background
    jobs (`ganzoo train ... &` in a script) so that the terminal's Ctrl-C reaches only the foreground."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
                    if hasattr(signal, name))  # Windows has neither SIGHUP nor SIGUSR1/2

    def __init__(self, second_interrupt: bool = True):
        self.signum: int | None = None
        self._old: dict = {}
        # False in data-parallel workers: a terminal's Ctrl-C reaches them and the launcher forwards it again
        self.second_interrupt = second_interrupt

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT and self.second_interrupt:
            raise KeyboardInterrupt
        self.signum = signum

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. not under joblib threads)
        for sig in self.SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._old[sig] = signal.signal(sig, self._handle)

    def previous(self, signum: int):
        """The handler `signum` had before `install` (a Python callable, or None)."""
        old = self._old.get(signum)
        return old if callable(old) else None

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
