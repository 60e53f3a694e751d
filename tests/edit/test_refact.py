"""ReFACT: the rank-one insertion, on tiny random layers."""

import torch

from robust_edit.edit.refact import rank_one_update


def _problem(seed=0, d_out=6, d_in=12):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    keys = torch.randn(200, d_in, generator=g, dtype=torch.float64)
    C = keys.T @ keys / len(keys)
    return W, C, torch.randn(d_in, generator=g, dtype=torch.float64), torch.randn(d_out, generator=g, dtype=torch.float64)


def test_insertion_maps_key_to_target_is_rank_one_and_spares_c_orthogonal_keys():
    W, C, k0, v_star = _problem()
    dW = rank_one_update(W, C, k0, v_star)
    assert ((W + dW) @ k0 - v_star).norm() / v_star.norm() <= 1e-5
    assert torch.linalg.matrix_rank(dW).item() == 1
    u = torch.linalg.solve(C, k0)
    x = torch.randn(20, len(k0), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x = x - (x @ u)[:, None] * u[None, :] / (u @ u)  # u^T x = 0
    assert (x @ dW.T).abs().max().item() <= 1e-10
    assert (k0 @ dW.T).norm() > 0.1  # the key itself does move
