"""OBProx-SG: orthant-based proximal stochastic gradient for L1-regularised training (spec §12.2).

Problem: min_x f(x) + lambda * ||x||_1 over every parameter handed to the optimizer. The optimizer counts
its own epochs: after every `epoch_size` steps the epoch counter grows by one, and while
``epoch % (np + no) < np`` it takes Prox-SG steps, otherwise Orthant steps. With ``no = inf`` (upstream's
setting) the first `np` epochs are Prox-SG and every later step is an Orthant step.

Both steps write exact zeros (``0.0``, never tiny values), and during Orthant steps a zero stays zero
(it has no orthant face to move along), so the number of zeros can only grow once they start.
A parameter whose ``grad`` is None in a step is left alone (upstream does the same).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class OBProxSG(torch.optim.Optimizer):
    """Prox-SG steps for the first `np` epochs, Orthant steps afterwards.

    Args:
        params: parameters or parameter groups (a group may override ``lr``, ``lambda_`` and ``eps``).
        lr: step size (changing ``group['lr']`` between steps works, as with any optimizer).
        lambda_: L1 weight lambda (upstream 1e-4). 0 turns the Prox-SG step into a plain SGD step.
        eps: Orthant projection threshold: an entry survives an Orthant step only if it stays on its side
            of zero by more than `eps` (upstream 1e-4).
        np: number of Prox-SG epochs at the start of each period (upstream floor(epochs / 10)).
        epoch_size: optimizer steps per epoch (upstream: batches per epoch).
        no: number of Orthant epochs per period (upstream: infinity, i.e. never switch back).

    Raises:
        ValueError: a negative or otherwise invalid setting.

    The step and epoch counters are part of `state_dict()`, so a resumed run switches phase at the same
    step as an uninterrupted one.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        lambda_: float = 1e-4,
        eps: float = 1e-4,
        np: int = 2,
        epoch_size: int = 1,
        no: float = math.inf,
    ) -> None:
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}")
        if lambda_ < 0:
            raise ValueError(f"invalid lambda {lambda_}")
        if eps < 0:
            raise ValueError(f"invalid eps {eps}")
        if np < 0 or no < 0 or np + no <= 0:
            raise ValueError(f"invalid phase lengths np={np}, no={no}")
        if epoch_size < 1:
            raise ValueError(f"epoch_size must be >= 1, got {epoch_size}")
        super().__init__(params, {"lr": lr, "lambda_": lambda_, "eps": eps})
        self.np, self.no, self.epoch_size = int(np), no, int(epoch_size)
        self.epoch = 0  # completed epochs
        self.iter = 0  # steps taken in the current epoch

    @property
    def orthant_phase(self) -> bool:
        """Whether the next step is an Orthant step (False: a Prox-SG step)."""
        return self.epoch % (self.np + self.no) >= self.np

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        orthant = self.orthant_phase
        for group in self.param_groups:
            lr, lam, eps = group["lr"], group["lambda_"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if orthant:
                    p.copy_(_orthant_step(p, p.grad, lr, lam, eps))
                else:
                    p.copy_(_prox_step(p, p.grad, lr, lam))
        self.iter += 1
        if self.iter >= self.epoch_size:
            self.epoch, self.iter = self.epoch + 1, 0
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["obprox"] = {"epoch": self.epoch, "iter": self.iter}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        counters = state_dict.pop("obprox", None)
        super().load_state_dict(state_dict)
        if counters is not None:
            self.epoch, self.iter = int(counters["epoch"]), int(counters["iter"])


def _prox_step(x: torch.Tensor, grad: torch.Tensor, lr: float, lam: float) -> torch.Tensor:
    """Soft-thresholding of y = x - lr * grad: y - lr*lam if > 0, y + lr*lam if < 0, else exactly 0."""
    y = torch.add(x, grad, alpha=-lr)  # the same arithmetic as torch.optim.SGD
    shrink = lr * lam
    return torch.where(y - shrink > 0, y - shrink, torch.where(y + shrink < 0, y + shrink, 0.0))


def _orthant_step(x: torch.Tensor, grad: torch.Tensor, lr: float, lam: float, eps: float) -> torch.Tensor:
    """Gradient step on the orthant face sign(x), then projection back onto it (zeros stay zero)."""
    zeta = torch.sign(x)  # 0 for exact zeros
    g = torch.where(zeta != 0, grad + lam * zeta, 0.0)
    x_hat = torch.add(x, g, alpha=-lr)
    return torch.where(x_hat * zeta > eps, x_hat, 0.0)
