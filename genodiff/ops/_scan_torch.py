"""Pure-torch selective scan cores (any device, autograd through torch).

* :func:`scan_sequential` — one step per time position; in float64 this is the oracle.
* :func:`scan_blocked` — blocked scan: the sequence is cut into ``nc`` chunks of length ``T``; all
  chunks are scanned at once step by step (``T`` steps over (batch, dim, nc, N) tensors), then the
  chunk-final states are carried across chunks (``nc`` small steps), then the carry is added back with
  the in-chunk cumulative decay ``exp(cumsum(delta * A))``. About ``2 * sqrt(L)`` Python steps.

Both take already-prepared tensors (delta after bias/softplus) and return ``(y, last_state)`` with
``y = sum_n C[t, n] h[t, n]`` — the D skip and z gate are applied by the caller.

Shapes: u, delta (batch, dim, L); A (dim, N); B, C either ``("var", (batch, G, N, L))`` or
``("const", (dim, N))``.
"""

from __future__ import annotations

import math

import torch


def _bc_at(kind: str, X: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-dim view of B/C: var -> (batch, dim, N, L); const -> (1, dim, N, 1)."""
    if kind == "const":
        return X[None, :, :, None]
    G = X.shape[1]
    return X.repeat_interleave(dim // G, dim=1) if G != dim else X


def scan_sequential(u, delta, A, Bk, B, Ck, C):
    """Sequential recurrence in the tensors' dtype. Returns y (batch, dim, L), last (batch, dim, N).

    Time steps are taken with ``unbind`` (not slicing) so autograd's backward stays O(L) in memory
    traffic instead of materialising a full-size zero gradient per step.
    """
    batch, dim, L = u.shape
    N = A.shape[1]
    h = u.new_zeros(batch, dim, N)
    if L == 0:
        return u.new_zeros(batch, dim, 0), h

    def steps(kind, X):
        if kind == "const":
            return [X] * L  # (dim, N) broadcasts
        G = X.shape[1]
        if G == dim:
            return X.unbind(-1)
        # (batch, G, N) per step -> (batch, dim, N) by expanding each group over its channels
        return [x.unsqueeze(2).expand(batch, G, dim // G, N).reshape(batch, dim, N) for x in X.unbind(-1)]

    Bs, Cs = steps(Bk, B), steps(Ck, C)
    us, ds = u.unbind(-1), delta.unbind(-1)
    ys = []
    for t in range(L):
        dt = ds[t].unsqueeze(-1)
        h = torch.exp(dt * A) * h + (dt * us[t].unsqueeze(-1)) * Bs[t]
        ys.append((h * Cs[t]).sum(-1))
    return torch.stack(ys, dim=-1), h


def scan_blocked(u, delta, A, Bk, B, Ck, C, chunk: int | None = None):
    """Blocked scan (see module doc). Same contract as :func:`scan_sequential`."""
    batch, dim, L = u.shape
    N = A.shape[1]
    if L == 0:
        return u.new_zeros(batch, dim, 0), u.new_zeros(batch, dim, N)
    T = chunk or max(1, int(math.ceil(math.sqrt(L))))
    nc = -(-L // T)
    pad = nc * T - L
    Bd = _bc_at(Bk, B, dim)  # (batch|1, dim, N, L|1)
    Cd = _bc_at(Ck, C, dim)
    # (batch, dim, L, N) pieces
    logdec = delta.unsqueeze(-1) * A[None, :, None, :]
    drive = (delta * u).unsqueeze(-1) * Bd.transpose(-1, -2)
    if pad:
        logdec = torch.nn.functional.pad(logdec, (0, 0, 0, pad))  # decay exp(0) = 1
        drive = torch.nn.functional.pad(drive, (0, 0, 0, pad))
    drive = drive.expand(batch, dim, nc * T, N)
    logdec = logdec.reshape(batch, dim, nc, T, N)
    drive = drive.reshape(batch, dim, nc, T, N)
    decs = torch.exp(logdec).unbind(3)
    drives = drive.unbind(3)
    # 1) local scans of all chunks at once, zero initial state (unbind: cheap autograd per step)
    h = drives[0]
    hl = [h]
    for t in range(1, T):
        h = decs[t] * h + drives[t]
        hl.append(h)
    hloc = torch.stack(hl, dim=3)  # (batch, dim, nc, T, N)
    cum = torch.exp(torch.cumsum(logdec, dim=3))  # decay from chunk start through t
    # 2) carry across chunks
    cum_end = cum[:, :, :, -1].unbind(2)  # (batch, dim, N) per chunk
    loc_end = hl[-1].unbind(2)
    carry = [u.new_zeros(batch, dim, N)]
    for c in range(nc - 1):
        carry.append(cum_end[c] * carry[-1] + loc_end[c])
    hin = torch.stack(carry, dim=2)  # state entering each chunk (batch, dim, nc, N)
    hfull = hloc + cum * hin.unsqueeze(3)
    last = cum_end[-1] * carry[-1] + loc_end[-1]
    hfull = hfull.reshape(batch, dim, nc * T, N)[:, :, :L]
    y = (hfull * Cd.transpose(-1, -2)).sum(-1)
    return y, last
