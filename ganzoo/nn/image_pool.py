"""CycleGAN's history of generated images (Zhu et al. 2017 §4, after Shrivastava et al. 2017), with
the behaviour of junyanz/pytorch-CycleGAN-and-pix2pix `util/image_pool.py`, kept in the model state.

The discriminator is shown fakes drawn from a buffer of the last `size` (50) generated images rather
than only the newest ones. Until the buffer is full each query stores its images and returns them
unchanged; after that, each image is, with probability ½, swapped for a random stored one (the stored
one is returned, the new one takes its slot), else returned as it is. Images are handled one at a
time in batch order, as the reference (a later image of a batch can get an earlier one's slot).

Unlike the reference (a Python list, lost on restart), the buffer and its fill count are registered
buffers: they are in `state_dict()`, hence in every checkpoint, and a resumed run continues with the
same pool. The coin flips and slot choices come from torch's global CPU generator, which the trainer
checkpoints too, so a resume is exact. The count is mirrored in a Python int so a query never reads a
device tensor (no host-device sync); the mirror is refreshed when a state dict is loaded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ImagePool(nn.Module):
    def __init__(self, size: int, shape: tuple[int, int, int]):
        super().__init__()
        if size < 0:
            raise ValueError(f"pool_size={size}: use 0 (no pool) or more")
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))  # [size, C, H, W]
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))  # slots filled so far
        self._count = 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        key = prefix + "count"
        if key in state_dict:
            self._count = int(state_dict[key])  # once per load, not per step

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """images [N, C, H, W] (detached here) -> N images to show the discriminator."""
        images = images.detach()
        if self.size == 0:
            return images
        if images.shape[1:] != self.images.shape[1:]:
            raise ValueError(f"image pool holds {tuple(self.images.shape[1:])} images, got {tuple(images.shape[1:])}")
        out = images.clone()
        cpu = torch.device("cpu")
        for i in range(images.shape[0]):
            if self._count < self.size:  # filling up: keep it, return it
                self.images[self._count].copy_(images[i])
                self._count += 1
                self.count.fill_(self._count)
            elif torch.rand((), device=cpu).item() > 0.5:  # a CPU draw: no device sync
                j = int(torch.randint(self.size, (), device=cpu))
                out[i].copy_(self.images[j])
                self.images[j].copy_(images[i])
        return out
