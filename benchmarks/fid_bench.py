"""FID figures for docs/evaluation.md: the real-data baseline and the cost of the pipeline.

    .venv/bin/python benchmarks/fid_bench.py real [--data ../shared/data] [--extractor judge]
        FID, KID and precision/recall of the MNIST test images (10,000) against the train split
        (60,000; the statistics of every image, a 10,000-image subset for KID and precision/recall),
        with the judge stand-in by default (the real Inception weights cannot be fetched everywhere).
    .venv/bin/python benchmarks/fid_bench.py time [--images 200] [--n 10000] [--device cpu]
        The time to score n generated images with the FID Inception at 28 px (1 channel) and 256 px
        (3 channels): the TF1 resize to 299 and the network's forward on `--images` random uint8 images,
        extrapolated to n, plus the Fréchet distance at 2048-d (eigh form and, for comparison, the
        eigenvalues of the non-symmetric product). The network has random weights (torch-fidelity's
        FeatureExtractorInceptionV3 with its weight loading skipped): the same architecture and input
        size, so the same time as the real weights.
Set OMP_NUM_THREADS / torch threads from the shell; the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from unittest import mock

import torch

from ganzoo.build import build_dataset
from ganzoo.metrics import feature_scores as fs
from ganzoo.metrics.features import build_extractor
from ganzoo.metrics.judge import dataset_images
from ganzoo.metrics.reference import reference_stats
from ganzoo.metrics.suite import EvalOptions


def real(args) -> None:
    cfg = {"name": "mnist", "root": args.data, "download": False, "resolution": 28}
    train, test = build_dataset(cfg, split="train"), build_dataset(cfg, split="test")
    opts = EvalOptions(feature_extractor=args.extractor, batch_size=500)
    ex = build_extractor(args.extractor, lambda: train, lambda: test, opts)
    t0 = time.perf_counter()
    ref = reference_stats(dataset_images(train), train.info.fingerprint, "mnist train", ex, keep=10000,
                          batch_size=500)
    t1 = time.perf_counter()
    feats = torch.cat([ex(b)[0] for b in dataset_images(test).split(500)])
    t2 = time.perf_counter()
    fid = fs.frechet_distance(*fs.mean_cov(feats), ref.mu, ref.sigma)
    kid = fs.kernel_inception_distance(ref.features, feats)
    precision, recall = fs.precision_recall(ref.features, feats)
    t3 = time.perf_counter()
    print(f"extractor {ex.name} (sha256 {ex.digest[:12]}, resize {ex.resize}); load {os.getloadavg()[0]:.1f}")
    print(f"MNIST test (10,000) vs {ref.what}: FID {fid:.3f}  KID {kid[0]:.5f} ± {kid[1]:.5f}  "
          f"precision {precision:.3f}  recall {recall:.3f}")
    print(f"times: reference {t1 - t0:.1f} s, test features {t2 - t1:.1f} s, scores {t3 - t2:.1f} s")


def _random_inception(device: torch.device):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None), \
            mock.patch("torch.load", lambda *a, **k: {}):
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path="random").to(device)


def timing(args) -> None:
    dev = torch.device(args.device)
    net = _random_inception(dev)
    print(f"threads {torch.get_num_threads()}, device {dev}, load {os.getloadavg()[0]:.1f}")
    for side, ch in ((28, 1), (256, 3)):
        x = torch.randint(0, 256, (args.images, ch, side, side), dtype=torch.uint8)
        with torch.no_grad():
            net(x[:2].expand(-1, 3, -1, -1).to(dev))  # warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            for b in x.split(args.batch):
                net(b.expand(-1, 3, -1, -1).to(dev))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{side} px: {args.images} images in {dt:.1f} s wall, {cpu:.1f} s CPU ({1000 * dt / args.images:.1f} "
              f"ms/image wall) -> {args.n} images ≈ {dt / args.images * args.n / 60:.1f} min wall, "
              f"{cpu / args.images * args.n / 60 / torch.get_num_threads():.1f} min on {torch.get_num_threads()} "
              f"free cores; load {os.getloadavg()[0]:.1f}")
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(4096, 2048, generator=g, dtype=torch.float64) for _ in range(2))
    s1, s2 = fs.mean_cov(a)[1], fs.mean_cov(b)[1]
    t0 = time.perf_counter()
    fs.frechet_distance(torch.zeros(2048), s1, torch.zeros(2048), s2)
    t1 = time.perf_counter()
    torch.linalg.eigvals(s1 @ s2)
    t2 = time.perf_counter()
    print(f"Fréchet distance at 2048-d: eigh form {t1 - t0:.2f} s; eigenvalues of S1 S2 {t2 - t1:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("real")
    r.add_argument("--data", default="../shared/data")
    r.add_argument("--extractor", default="judge")
    t = sub.add_parser("time")
    t.add_argument("--images", type=int, default=200)
    t.add_argument("--batch", type=int, default=50)
    t.add_argument("--n", type=int, default=10000)
    t.add_argument("--device", default="cpu")
    args = p.parse_args()
    (real if args.what == "real" else timing)(args)


if __name__ == "__main__":
    main()
