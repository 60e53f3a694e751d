"""UCE: the closed form, on tiny random layers, against properties it must have."""

import torch

from robust_edit.edit.uce import closed_form


def _problem(seed=0, d_out=8, d_in=16, n_edit=4, n_keep=5):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    return (W, torch.randn(n_edit, d_in, generator=g, dtype=torch.float64),
            torch.randn(n_edit, d_out, generator=g, dtype=torch.float64),
            torch.randn(n_keep, d_in, generator=g, dtype=torch.float64))


def _rel(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1)).max().item()


def test_vanishing_ridge_maps_edit_keys_to_targets_and_keeps_preserved_outputs():
    W, ce, v, cp = _problem()  # 4 + 5 keys < 16 input dimensions
    W_new = closed_form(W, ce, v, cp, lam=1e-8)
    assert _rel(ce @ W_new.T, v) <= 1e-4
    assert _rel(cp @ W_new.T, cp @ W.T) <= 1e-4
    assert _rel(ce @ W.T, v) > 0.5  # the edit did something


def test_ridge_solution_is_the_minimiser_of_the_ridge_objective():
    W, ce, v, cp = _problem(seed=1)
    lam, s_e, s_p = 0.7, 1.3, 0.4
    W_new = closed_form(W, ce, v, cp, lam=lam, s_e=s_e, s_p=s_p)
    # Independently: min lam|X-W|^2 + s_e|X ce^T - v^T|^2 + s_p|X cp^T - W cp^T|^2 is a
    # least-squares problem in X^T with stacked rows.
    M = torch.cat([lam ** 0.5 * torch.eye(W.shape[1], dtype=W.dtype), s_e ** 0.5 * ce, s_p ** 0.5 * cp])
    Y = torch.cat([lam ** 0.5 * W.T, s_e ** 0.5 * v, s_p ** 0.5 * cp @ W.T])
    X = torch.linalg.lstsq(M, Y).solution.T
    assert torch.allclose(W_new, X, rtol=1e-9, atol=1e-9)

    def objective(Z):
        return (lam * (Z - W).pow(2).sum() + s_e * (ce @ Z.T - v).pow(2).sum()
                + s_p * (cp @ Z.T - cp @ W.T).pow(2).sum())
    nudged = W_new + 1e-3 * torch.randn(W.shape, dtype=W.dtype, generator=torch.Generator().manual_seed(2))
    assert objective(W_new) < objective(nudged)


def test_float32_weights_stay_float32():
    W, ce, v, cp = (t.float() for t in _problem())
    assert closed_form(W, ce, v, cp, lam=0.5).dtype == torch.float32
