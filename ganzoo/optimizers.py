"""Adam with eps inside the square root, as Theano-era reference code writes it.

openai/improved-gan's `nn.adam_updates` (the SSGAN official code) updates

    m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²,   p ← p − lr · m̂ / √(v̂ + eps)

with m̂, v̂ bias-corrected and eps = 1e-8 *inside* the root, so no step is divided by less than
√eps = 1e-4. torch's Adam divides by √v̂ + eps instead; no single eps makes the two agree for every
gradient size (1e-4 outside matches tiny gradients, 1e-8 outside matches large ones). Measured on
SSGAN (a standalone loop on ganzoo's nets, 10 seeds of 2,000 steps): the generator collapsed in 2 runs
with eps 1e-4 outside the root and in 1 with this update — no clear difference, so ssgan keeps torch's
fused Adam (this one is ~10 % slower a step there: several passes over the weights instead of one).
`optim.eps_in_sqrt=true` selects it, to reproduce the reference update exactly.

A trainer that finds non-finite gradients sets `found_inf` (a 0-dim device tensor, 1.0 = skip) before
`step()`, as it does for torch's fused optimizers: the step is then a no-op computed on the device —
moments, step counts and weights untouched — with no host sync (`skips_on_device`).
"""

from __future__ import annotations

import torch
from torch import Tensor


class AdamEpsInSqrt(torch.optim.Optimizer):
    skips_on_device = True  # honours `found_inf` without a host sync (the trainer checks this)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid Adam settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self.found_inf: Tensor | None = None

    def _state(self, p: Tensor) -> dict:
        st = self.state[p]
        if not st:
            # the step count in the weights' precision (float32 at least): 1 − β2^t cancels badly in less
            st["step"] = torch.zeros((), dtype=torch.promote_types(p.dtype, torch.float32), device=p.device)
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return st

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        found = self.found_inf
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            states = [self._state(p) for p in params]
            m, v = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            steps = [s["step"] for s in states]
            dev, dtype = params[0].device, steps[0].dtype
            keep = torch.ones((), device=dev, dtype=dtype) if found is None else 1.0 - found.to(dev, dtype)
            # a skipped step: gradients replaced by 0 (they may be inf/nan) and every change scaled by keep = 0
            grads = [torch.where(keep > 0, p.grad, 0.0) for p in params]
            if group["weight_decay"]:
                torch._foreach_add_(grads, params, alpha=group["weight_decay"])
            n = len(params)
            torch._foreach_add_(steps, keep)
            torch._foreach_lerp_(m, grads, [keep * (1 - b1)] * n)  # m + (1 − β1)(g − m), or m when skipped
            torch._foreach_mul_(grads, grads)
            torch._foreach_lerp_(v, grads, [keep * (1 - b2)] * n)
            bc1 = torch._foreach_pow(b1, steps)  # 1 − β^t below; clamped so a skipped first step stays finite
            bc2 = torch._foreach_pow(b2, steps)
            for bc in (bc1, bc2):
                torch._foreach_neg_(bc)
                torch._foreach_add_(bc, 1.0)
                torch._foreach_clamp_min_(bc, 1e-30)
            denom = torch._foreach_div(v, bc2)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_sqrt_(denom)
            if not group["eps"]:
                torch._foreach_clamp_min_(denom, 1e-30)  # v = 0 with eps = 0: no 0 · inf below
            # p − (lr·keep/bc1)·m/denom, the step size folded into the denominator: bc1/(−lr·keep) is
            # ±inf when the step is skipped (or lr = 0), so the weights get m/inf = 0 added
            torch._foreach_div_(bc1, keep * -group["lr"])
            torch._foreach_mul_(denom, bc1)
            torch._foreach_addcdiv_(params, m, denom)
        return loss
