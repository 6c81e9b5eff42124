"""The TopK SAE's sparse fast path (vtrep.sae.sparse_ops) against the dense reference path."""

import copy

import pytest
import torch

from vtrep.sae import BatchTopKSAE, MatryoshkaSAE, TopKSAE
from vtrep.sae.sparse_ops import dense_codes, sparse_decode, topk_encode

D, K, KACT = 6, 48, 3


def pair(**kwargs) -> tuple[TopKSAE, TopKSAE]:
    torch.manual_seed(0)
    dense = TopKSAE(**{"d_in": D, "num_latents": K, "k": KACT, "sparse_path": False, **kwargs}).double()
    with torch.no_grad():  # untied, non-trivial biases so every gradient term matters
        dense.W_enc.add_(0.3 * torch.randn_like(dense.W_enc))
        dense.b_enc.copy_(0.2 * torch.randn(K, dtype=torch.float64))
        dense.b_dec.copy_(0.5 * torch.randn(D, dtype=torch.float64))
        dense.input_scale.fill_(1.7)
    sparse = copy.deepcopy(dense)
    sparse.sparse_path = True
    assert sparse.uses_sparse_path and not dense.uses_sparse_path
    return dense, sparse


def run(sae: TopKSAE, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    sae.zero_grad(set_to_none=True)
    out = sae.loss(x)
    out.loss.backward()
    grads = {name: p.grad for name, p in sae.named_parameters()}
    return out, grads, x.grad


def assert_same(dense: TopKSAE, sparse: TopKSAE, x: torch.Tensor, expect_aux: bool):
    out_d, grads_d, gx_d = run(dense, x)
    out_s, grads_s, gx_s = run(sparse, x)
    assert ("auxk" in out_d.parts) == expect_aux and set(out_s.parts) == set(out_d.parts)
    for name in out_d.parts:
        torch.testing.assert_close(out_s.parts[name], out_d.parts[name])
    torch.testing.assert_close(out_s.loss, out_d.loss)
    torch.testing.assert_close(out_s.x_hat, out_d.x_hat)
    torch.testing.assert_close(out_s.codes, out_d.codes)
    assert set(grads_d) == {"W_enc", "b_enc", "W_dec", "b_dec"}
    for name, grad in grads_d.items():
        assert grad is not None and grads_s[name] is not None, name
        torch.testing.assert_close(grads_s[name], grad, msg=name)
    torch.testing.assert_close(gx_s, gx_d)
    torch.testing.assert_close(sparse.tokens_since_fired, dense.tokens_since_fired)


def test_sparse_path_matches_dense_without_dead_latents():
    dense, sparse = pair()
    x = torch.randn(20, D, dtype=torch.float64) * 2
    assert_same(dense, sparse, x, expect_aux=False)


@pytest.mark.parametrize("aux_k", [4, 100])  # 100 > number of dead latents: k_aux is capped
def test_sparse_path_matches_dense_with_dead_latents(aux_k):
    dense, sparse = pair(aux_k=aux_k, dead_after_tokens=10)
    for model in (dense, sparse):
        model.tokens_since_fired[: K // 2] = 1000  # half the dictionary starts dead
    x = torch.randn(20, D, dtype=torch.float64) * 2
    for _ in range(2):  # the second call sees the counters the first one updated
        assert_same(dense, sparse, x, expect_aux=True)


def test_sparse_path_in_eval_mode_and_with_negative_pre_activations():
    dense, sparse = pair(aux_k=5, dead_after_tokens=10)
    with torch.no_grad():  # most pre-activations negative: some of the top k are ReLU'd to 0
        for model in (dense, sparse):
            model.b_enc.fill_(-3.0)
            model.tokens_since_fired[::3] = 50
    dense.eval(), sparse.eval()
    x = torch.randn(16, D, dtype=torch.float64)
    out, _, _ = run(dense, x)
    assert bool((out.codes == 0).sum(1).gt(K - KACT).any())  # the ReLU mask is exercised
    assert_same(dense, sparse, x, expect_aux=True)


def test_training_steps_stay_identical():
    dense, sparse = pair(aux_k=4, dead_after_tokens=40)
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (dense, sparse)]
    for step in range(4):
        x = torch.randn(24, D, dtype=torch.float64)
        for model, opt in zip((dense, sparse), opts):
            opt.zero_grad()
            model.loss(x).loss.backward()
            model.remove_parallel_gradient()
            opt.step()
            model.normalise_decoder()
    for (name, p_d), p_s in zip(dense.named_parameters(), sparse.parameters()):
        torch.testing.assert_close(p_s, p_d, msg=name)


def test_automatic_choice_and_config():
    assert TopKSAE(4, 64, k=8).uses_sparse_path  # 64 >= 8·8
    assert not TopKSAE(4, 63, k=8).uses_sparse_path
    assert not TopKSAE(4, 64, k=8, sparse_path=False).uses_sparse_path
    assert TopKSAE(4, 16, k=8, sparse_path=True).uses_sparse_path
    sae = TopKSAE(4, 64, k=8, sparse_path=True)
    assert sae.config["sparse_path"] is True
    assert TopKSAE(**sae.config).sparse_path is True
    assert TopKSAE(4, 64, k=8).config["sparse_path"] is None
    with pytest.raises(ValueError, match="sparse_path"):
        TopKSAE(4, 64, k=8, sparse_path="yes")
    # subclasses that change the activation / loss stay on the dense path and keep their config
    for sub in (BatchTopKSAE(4, 64, k=2), MatryoshkaSAE(4, 64, k=2)):
        assert not sub.uses_sparse_path and "sparse_path" not in sub.config


def test_sparse_decode_and_encode_match_dense_ops():
    torch.manual_seed(1)
    n, d, latents, k = 7, 5, 30, 4
    W_dec, b_dec = torch.randn(latents, d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    W_enc, b_enc = torch.randn(d, latents, dtype=torch.float64), torch.randn(latents, dtype=torch.float64)
    x = torch.randn(n, d, dtype=torch.float64)
    values, indices = topk_encode(x, W_enc, b_enc, k)
    pre = torch.addmm(b_enc, x, W_enc)
    ref_values, ref_indices = pre.topk(k, sorted=False)
    torch.testing.assert_close(indices, ref_indices)
    torch.testing.assert_close(values, ref_values.relu())
    codes = dense_codes(values, indices, latents)
    torch.testing.assert_close(sparse_decode(values, indices, W_dec, b_dec), codes @ W_dec + b_dec)
    torch.testing.assert_close(sparse_decode(values, indices, W_dec), codes @ W_dec)


def test_topk_encode_gradcheck():
    torch.manual_seed(2)
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    b = torch.randn(12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, W, b: topk_encode(x, W, b, 3)[0], (x, W, b))
