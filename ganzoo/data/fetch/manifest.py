"""Everything ganzoo can download: one `Entry` per archive or weights file, with its public URL and,
where one is published, its SHA-256.

Names: datasets use the names of their `conf/dataset/<name>.yaml` (CycleGAN's own zips of facades and
maps are `facades_unpaired` / `maps_unpaired`, since `facades` / `maps` are pix2pix's tarballs);
weights are `cyclegan_model/<name>` and `pix2pix_model/<name>` (the names the official
`scripts/download_{cyclegan,pix2pix}_model.sh` take) and `vgg19`; the single data files of a dataset
read as they are (no archive) are `<dataset>/<split>` (`svhn/train`, `usps/test`).

Where things go (relative to the data home, see `ganzoo.storage.data_home`): a dataset is the
folder `<name>/` (the archive's top folder `layout`, renamed); weights are `<url file name>` inside
the name's folder (`cyclegan_model/horse2zebra.pth`, `vgg19-dcbb9e9d.pth`), and so are data files
(`svhn/train_32x32.mat`: kind "file", verified and used as they are, like weights).

Hashes (`sha256`), pinned from published checksum lists of the very same files:
- the CycleGAN zips: TensorFlow Datasets `tensorflow_datasets/url_checksums/cycle_gan.txt` (size and
  SHA-256 of each zip, listed under the project's earlier host
  people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/, which now serves from efrosgans);
- DIV2K: TensorFlow Datasets `url_checksums/div2k.txt`;
- SVHN's cropped-digit .mat files: TensorFlow Datasets `url_checksums/svhn_cropped.txt`;
- VGG19: torchvision names the file after the first 8 hex digits of its SHA-256 (`dcbb9e9d`); the
  full digest below starts with them and is the one other projects pin for this URL.
- the FID Inception: pytorch-fid's release names the file after the first 8 hex digits of its
  SHA-256 (`6726825d`); the full digest is the one widely pinned for this 95,628,359-byte file
  (torch-fidelity serves the same bytes under the same prefix). Not verifiable from this machine (no
  internet): a download checks it before the file takes its name, as for every pinned entry.
No SHA-256 is published for the pix2pix tarballs, the pretrained CycleGAN/pix2pix generators
(their download scripts use wget with no check) or the USPS files (torchvision lists MD5s only):
`sha256=None`. The first successful download of
such a file records its digest in `<data home>/manifest.lock.json`, and every later download (or
archive placed by hand) is verified against the recorded one (trust on first use). Every URL is
https (the efrosgans host serves it too), so even a first download comes over an authenticated
connection, except SVHN's: its only host (ufldl.stanford.edu, the URL every reference uses, TFDS's
included) is listed over plain http, and its files are pinned, so what arrives is checked against the
published digest whatever the transport. `ganzoo data list` shows the scheme, and a test keeps plain
http out of this table for any entry without a pinned hash.

Sizes are in bytes: exact for the pinned files and the pix2pix facades/maps tarballs (as served),
approximate (from the host's listing, or parameter count × 4 for generators) elsewhere; they feed
progress bars and `ganzoo data list`, never a check.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..base import DataError

CYCLEGAN_DATASETS = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
PIX2PIX_DATASETS = "https://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
CYCLEGAN_MODELS = "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
PIX2PIX_MODELS = "https://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"
DIV2K = "https://data.vision.ee.ethz.ch/cvl/DIV2K"
SVHN = "http://ufldl.stanford.edu/housenumbers"  # pinned (TFDS svhn_cropped.txt); the host's own scheme
USPS = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass"

_MB = 1_000_000
_RESNET9_G = 45_600_000  # 11.378 M float32 parameters (CycleGAN's resnet_9blocks G)
_UNET256_G = 217_700_000  # 54.4 M float32 parameters (pix2pix's unet_256 G)


@dataclass(frozen=True)
class Entry:
    name: str
    url: str
    sha256: str | None  # published digest; None: recorded on first download (manifest.lock.json)
    size: int | None  # bytes (see the module docstring for which are exact)
    kind: str  # "dataset" (an archive, extracted) | "weights" (one file) | "file" (one data file, read as is)
    layout: str  # datasets: the archive's top folder ("" = its root); weights: ""
    description: str

    @property
    def filename(self) -> str:
        """The file name the URL serves (the archive or the weights file)."""
        return posixpath.basename(urlsplit(self.url).path)

    @property
    def path(self) -> str:
        """Where the ready item lives, relative to the data home: a folder for datasets, a file for
        weights (the URL's file name inside the name's folder: cyclegan_model/horse2zebra.pth)."""
        if self.kind == "dataset":
            return self.name
        folder = posixpath.dirname(self.name)
        return posixpath.join(folder, self.filename) if folder else self.filename


def _cyclegan(name: str, archive: str, sha256: str, size: int, what: str) -> Entry:
    return Entry(name, f"{CYCLEGAN_DATASETS}/{archive}.zip", sha256, size, "dataset", archive,
                 f"CycleGAN unpaired set: {what}")


def _pix2pix(name: str, size: int | None, what: str, splits: str) -> Entry:
    return Entry(name, f"{PIX2PIX_DATASETS}/{name}.tar.gz", None, size, "dataset", name,
                 f"pix2pix paired {what}, A|B side by side ({splits})")


def _cyclegan_model(name: str, what: str) -> Entry:
    return Entry(f"cyclegan_model/{name}", f"{CYCLEGAN_MODELS}/{name}.pth", None, _RESNET9_G, "weights", "",
                 f"official pretrained CycleGAN generator (resnet_9blocks): {what}")


def _pix2pix_model(name: str, what: str) -> Entry:
    return Entry(f"pix2pix_model/{name}", f"{PIX2PIX_MODELS}/{name}.pth", None, _UNET256_G, "weights", "",
                 f"official pretrained pix2pix generator (unet_256): {what}")


_ENTRIES: list[Entry] = [
    # CycleGAN datasets (sizes and hashes: TFDS url_checksums/cycle_gan.txt)
    _cyclegan("horse2zebra", "horse2zebra",
              "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1", 116_867_962,
              "horses <-> zebras (ImageNet photos)"),
    _cyclegan("apple2orange", "apple2orange",
              "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8", 78_456_409,
              "apples <-> oranges (ImageNet photos)"),
    _cyclegan("summer2winter_yosemite", "summer2winter_yosemite",
              "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9", 132_640_856,
              "Yosemite in summer <-> winter (Flickr)"),
    _cyclegan("monet2photo", "monet2photo",
              "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04", 305_231_073,
              "Monet paintings <-> landscape photos"),
    _cyclegan("cezanne2photo", "cezanne2photo",
              "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff", 279_885_071,
              "Cezanne paintings <-> landscape photos"),
    _cyclegan("ukiyoe2photo", "ukiyoe2photo",
              "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08", 292_946_532,
              "Ukiyo-e prints <-> landscape photos"),
    _cyclegan("vangogh2photo", "vangogh2photo",
              "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff", 306_590_349,
              "Van Gogh paintings <-> landscape photos"),
    _cyclegan("iphone2dslr_flower", "iphone2dslr_flower",
              "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113", 339_964_458,
              "flower photos, iPhone <-> DSLR (shallow depth of field)"),
    _cyclegan("facades_unpaired", "facades",
              "9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0", 35_135_868,
              "facade photos <-> label maps (CMP Facades, CycleGAN's zip)"),
    _cyclegan("maps_unpaired", "maps",
              "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e", 1_476_754_427,
              "aerial photos <-> Google maps (CycleGAN's zip)"),
    # pix2pix datasets (no published hashes; facades/maps sizes as served, the others from the listing)
    _pix2pix("facades", 30_168_306, "label map -> facade photo (CMP Facades)", "train/val/test"),
    _pix2pix("maps", 250_242_400, "aerial photo -> Google map", "train/val"),
    _pix2pix("edges2shoes", 2_100 * _MB, "edge map -> shoe photo (UT Zappos50K)", "train/val"),
    _pix2pix("edges2handbags", 8_600 * _MB, "edge map -> handbag photo (iGAN)", "train/val"),
    _pix2pix("night2day", 2_000 * _MB, "night -> day webcam photos (Transient Attributes)", "train/val/test"),
    # super-resolution data and the perceptual-loss network
    Entry("div2k_train_hr", f"{DIV2K}/DIV2K_train_HR.zip",
          "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", 3_530_603_713, "dataset",
          "DIV2K_train_HR", "DIV2K 800 high-resolution training images (2K PNGs), for super-resolution"),
    Entry("div2k_valid_hr", f"{DIV2K}/DIV2K_valid_HR.zip",
          "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", 448_993_893, "dataset",
          "DIV2K_valid_HR", "DIV2K 100 high-resolution validation images (2K PNGs), for super-resolution"),
    Entry("vgg19", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
          "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44", 574_673_361, "weights", "",
          "torchvision VGG19 ImageNet weights (state dict), the SRGAN/ESRGAN perceptual loss"),
    # digit sets read from their published files (conf/dataset/svhn.yaml, usps.yaml)
    Entry("svhn/train", f"{SVHN}/train_32x32.mat",
          "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", 182_040_794, "file", "",
          "SVHN cropped house-number digits, train split (73,257 RGB 32x32; MATLAB .mat)"),
    Entry("svhn/test", f"{SVHN}/test_32x32.mat",
          "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", 64_275_384, "file", "",
          "SVHN cropped house-number digits, test split (26,032 RGB 32x32; MATLAB .mat)"),
    Entry("usps/train", f"{USPS}/usps.bz2", None, None, "file", "",
          "USPS handwritten digits, train split (7,291 grey 16x16; libsvm text, bz2)"),
    Entry("usps/test", f"{USPS}/usps.t.bz2", None, None, "file", "",
          "USPS handwritten digits, test split (2,007 grey 16x16; libsvm text, bz2)"),
    # the feature network of FID/KID/IS/precision-recall (ganzoo.metrics.features)
    Entry("fid_inception", "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
          "pt_inception-2015-12-05-6726825d.pth",
          "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", 95_628_359, "weights", "",
          "the TF-ported FID Inception v3 (pt_inception-2015-12-05, as pytorch-fid and torch-fidelity)"),
    # official pretrained generators (scripts/download_cyclegan_model.sh, download_pix2pix_model.sh)
    _cyclegan_model("horse2zebra", "horse -> zebra"),
    _cyclegan_model("zebra2horse", "zebra -> horse"),
    _cyclegan_model("apple2orange", "apple -> orange"),
    _cyclegan_model("orange2apple", "orange -> apple"),
    _cyclegan_model("summer2winter_yosemite", "Yosemite summer -> winter"),
    _cyclegan_model("winter2summer_yosemite", "Yosemite winter -> summer"),
    _cyclegan_model("monet2photo", "Monet painting -> photo"),
    _cyclegan_model("style_monet", "photo -> Monet style"),
    _cyclegan_model("style_cezanne", "photo -> Cezanne style"),
    _cyclegan_model("style_ukiyoe", "photo -> Ukiyo-e style"),
    _cyclegan_model("style_vangogh", "photo -> Van Gogh style"),
    _cyclegan_model("sat2map", "aerial photo -> map"),
    _cyclegan_model("map2sat", "map -> aerial photo"),
    _cyclegan_model("cityscapes_photo2label", "Cityscapes photo -> label map"),
    _cyclegan_model("cityscapes_label2photo", "Cityscapes label map -> photo"),
    _cyclegan_model("facades_photo2label", "facade photo -> label map"),
    _cyclegan_model("facades_label2photo", "facade label map -> photo"),
    _cyclegan_model("iphone2dslr_flower", "iPhone flower photo -> DSLR"),
    _pix2pix_model("edges2shoes", "edge map -> shoe photo"),
    _pix2pix_model("sat2map", "aerial photo -> map"),
    _pix2pix_model("map2sat", "map -> aerial photo"),
    _pix2pix_model("facades_label2photo", "facade label map -> photo"),
    _pix2pix_model("day2night", "day -> night webcam photo"),
]

ENTRIES: dict[str, Entry] = {e.name: e for e in _ENTRIES}
if len(ENTRIES) != len(_ENTRIES):
    raise RuntimeError("duplicate name in the download manifest")


def names() -> list[str]:
    return list(ENTRIES)


def get(name: str) -> Entry:
    """The entry called `name`; DataError (one line, listing the known names) when there is none."""
    try:
        return ENTRIES[name]
    except KeyError:
        raise DataError(f"unknown download {name!r} (known: {', '.join(ENTRIES)})") from None
