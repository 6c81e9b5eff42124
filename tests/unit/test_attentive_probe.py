import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtrep.probes.attentive_probe import (AttentiveProbe, CrossAttentionBlock, fit_attentive_probe,
                                          predict_pooled_views, predict_views)
from vtrep.probes.knn import knn_accuracy, knn_predict
from vtrep.probes.linear_probe import LinearProbe, fit_linear_probe

SMALL = dict(num_heads=4, self_attention_blocks=1, batch_size=64)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny probes are all overhead: one thread avoids spin-waiting on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_token_task(n, tokens=16, dim=16, position=5, strength=2.0, seed=0):
    """The label is the sign of feature 0 of token ``position`` only.

    Every token also carries a fixed signature (a positional embedding) in the other features, so a
    probe can tell token 5 from the rest. The other 15 tokens carry ±strength in feature 0 too (7 of
    one sign, 8 of the other, shuffled), summing to exactly minus token 5's: the mean over tokens
    holds no label information at all, so a linear probe on mean-pooled tokens is at chance.
    """
    g = torch.Generator().manual_seed(seed)
    signature = torch.randn(tokens, dim, generator=g)
    signature[:, 0] = 0
    y = torch.randint(0, 2, (n,), generator=g)
    sign = (2 * y - 1).float()
    others = torch.tensor([1.0] * 7 + [-1.0] * 8)
    distractors = torch.stack([others[torch.randperm(tokens - 1, generator=g)] for _ in range(n)]) * sign[:, None]
    signal = torch.cat([distractors[:, :position], sign[:, None], distractors[:, position:]], dim=1)
    x = signature + 0.5 * torch.randn(n, tokens, dim, generator=g)
    x[:, :, 0] += strength * signal
    return x, y


def test_attentive_probe_finds_the_one_informative_token_that_mean_pooling_cancels():
    x, y = one_token_task(768)
    pooled_signal = x[:, :, 0].mean(1)
    assert abs(torch.corrcoef(torch.stack([pooled_signal, y.float()]))[0, 1]) < 0.1  # nothing left to pool
    attentive = fit_attentive_probe(x[:512], y[:512], x[512:], y[512:], 2, epochs=20, lrs=(3e-3, 1e-2),
                                    weight_decays=(0.01,), **SMALL)
    linear = fit_linear_probe(x[:512].mean(1), y[:512], x[512:].mean(1), y[512:], 2, epochs=20)
    print(f"attentive top1 {attentive.top1:.3f} (lr {attentive.lr}), linear-on-mean top1 {linear.top1:.3f}")
    assert linear.top1 < 0.62
    assert attentive.top1 >= linear.top1 + 0.2 and attentive.top1 > 0.85
    # the grid was chosen on a held-out tenth of the training clips
    assert attentive.num_holdout == round(0.1 * 512) and attentive.num_train == 512 - attentive.num_holdout
    assert attentive.holdout_top1 == max(h for _, _, h in attentive.grid)


def test_the_choice_of_lr_and_wd_never_looks_at_the_eval_set():
    x, y = one_token_task(200, seed=3)
    kw = dict(epochs=2, lrs=(1e-2, 1e-4), weight_decays=(0.01,), **SMALL)
    a = fit_attentive_probe(x[:150], y[:150], x[150:], y[150:], 2, **kw)
    b = fit_attentive_probe(x[:150], y[:150], x[150:], 1 - y[150:], 2, **kw)  # eval labels flipped
    assert (a.lr, a.weight_decay, a.grid) == (b.lr, b.weight_decay, b.grid)
    assert a.top1 == pytest.approx(1 - b.top1)


def test_a_single_setting_trains_on_every_training_clip():
    x, y = one_token_task(100)
    res = fit_attentive_probe(x[:80], y[:80], x[80:], y[80:], 2, epochs=1, lrs=(1e-3,), weight_decays=(0.01,),
                              **SMALL)
    assert res.num_train == 80 and res.num_holdout == 0 and res.holdout_top1 is None
    assert res.grid == ((1e-3, 0.01, None),) and (res.lr, res.weight_decay) == (1e-3, 0.01)


def test_architecture_defaults_follow_vjepa2():
    probe = AttentiveProbe(64, 5)
    assert probe.query.shape == (1, 1, 64) and probe.query.std() < 0.05
    assert len(probe.blocks) == 3 and probe.blocks[0].num_heads == 16 and probe.cross.num_heads == 16
    assert probe.cross.mlp[0].out_features == 4 * 64
    assert not hasattr(probe.cross, "proj")  # no output projection after the cross-attention
    assert len(AttentiveProbe(64, 5, self_attention_blocks=0).blocks) == 0  # V-JEPA 1's probe
    assert probe(torch.randn(3, 7, 64)).shape == (3, 5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=16, num_classes=3, num_heads=3), "num_heads=3 must divide the token width dim=16"),
    (dict(dim=16, num_classes=0, num_heads=4), "num_classes must be a positive integer"),
    (dict(dim=16, num_classes=3, num_heads=4, self_attention_blocks=-1), "self_attention_blocks must be"),
])
def test_construction_errors_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentiveProbe(**kwargs)


def test_forward_rejects_the_wrong_token_width():
    with pytest.raises(ValueError, match=r"tokens must be \(B, N, D=16\), got shape \(2, 4, 8\)"):
        AttentiveProbe(16, 2, num_heads=4)(torch.randn(2, 4, 8))


def _fit(train_x, train_y, eval_x, eval_y, classes=2, **kw):
    return fit_attentive_probe(train_x, train_y, eval_x, eval_y, classes, epochs=1, lrs=(1e-3,),
                               weight_decays=(0.0,), **{**SMALL, **kw})


def test_fit_errors_name_the_problem():
    x, y = torch.randn(8, 4, 16), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="same width D, got 16 and 8"):
        _fit(x, y, torch.randn(8, 4, 8), y)
    with pytest.raises(ValueError, match=r"train_y must be in \[0, num_classes=2\), got values in \[0, 2\]"):
        _fit(x, torch.tensor([0, 1, 2, 0, 1, 0, 1, 0]), x, y)
    with pytest.raises(ValueError, match=r"eval_y must be in \[0, num_classes=2\), got values in \[-1, 1\]"):
        _fit(x, y, x, torch.tensor([0, 1, -1, 0, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match=r"train_y must be \(8,\) to match train_tokens"):
        _fit(x, y[:5], x, y)
    with pytest.raises(ValueError, match=r"train_tokens must be \(B, N, D\)"):
        _fit(x.mean(1), y, x, y)
    with pytest.raises(ValueError, match="num_heads=3 must divide the token width dim=16"):
        _fit(x, y, x, y, num_heads=3)
    with pytest.raises(ValueError, match="weight decay must be a finite number >= 0"):
        fit_attentive_probe(x, y, x, y, 2, lrs=(1e-3,), weight_decays=(-0.1,))


def test_cross_attention_normalises_the_tokens_and_not_the_query():
    """LayerNorm makes the attention branch blind to a positive rescaling of the tokens (keys and
    values are computed from LN(tokens)); the query is used raw, so rescaling it changes the branch.
    Were LN applied to the query instead, the two outcomes would swap."""
    torch.manual_seed(0)
    block = CrossAttentionBlock(16, num_heads=4)
    query, tokens = torch.randn(3, 1, 16), torch.randn(3, 9, 16) + 0.3
    base = block.attend(query, tokens)
    assert torch.allclose(block.attend(query, 7.0 * tokens), base, atol=1e-5)
    assert not torch.allclose(block.attend(7.0 * query, tokens), base, atol=1e-2)
    # and the block adds the branch to the raw query: q + attn, then q + MLP(LN(q))
    q = query + base
    assert torch.allclose(block(query, tokens), q + block.mlp(block.norm_mlp(q)), atol=1e-6)


def test_multi_view_prediction_is_the_mean_of_per_view_softmaxes():
    torch.manual_seed(0)
    probe = AttentiveProbe(16, 4, num_heads=4, self_attention_blocks=1)
    views = [torch.randn(5, 12, 16) for _ in range(3)]  # e.g. 2 clips × 6 tokens concatenated per view
    expected = sum(probe(v).softmax(-1) for v in views) / 3
    probs = predict_views(probe, views)
    assert torch.allclose(probs, expected, atol=1e-6) and torch.allclose(probs.sum(-1), torch.ones(5))
    assert not torch.allclose(probs, probe(torch.stack(views).mean(0)).softmax(-1), atol=1e-4)  # not logit-mean
    linear = LinearProbe(16, 4).eval()
    pooled = [torch.randn(5, 16) for _ in range(2)]
    assert torch.allclose(predict_pooled_views(linear, pooled),
                          (linear(pooled[0]).softmax(-1) + linear(pooled[1]).softmax(-1)) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="same batch size"):
        predict_views(probe, [views[0], views[1][:2]])


def test_same_seed_same_result_other_seed_other_probe():
    x, y = one_token_task(120, seed=1)
    kw = dict(epochs=2, lrs=(1e-2, 1e-3), weight_decays=(0.01, 0.1), **SMALL)
    torch.manual_seed(0)  # the global RNG must not matter: the seed argument decides everything
    a = fit_attentive_probe(x[:90], y[:90], x[90:], y[90:], 2, seed=4, **kw)
    torch.manual_seed(1)
    b = fit_attentive_probe(x[:90], y[:90], x[90:], y[90:], 2, seed=4, **kw)
    c = fit_attentive_probe(x[:90], y[:90], x[90:], y[90:], 2, seed=5, **kw)
    assert a == b  # every field but the module
    assert all(torch.equal(p, q) for p, q in zip(a.probe.state_dict().values(), b.probe.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.probe.state_dict().values(), c.probe.state_dict().values()))


def _knn_reference(train_x, train_y, eval_x, k, temperature, classes):
    tr = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    ev = eval_x / np.linalg.norm(eval_x, axis=1, keepdims=True)
    predictions = []
    for row in ev:
        sims = tr @ row
        nearest = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(classes)
        for i in nearest:
            votes[train_y[i]] += np.exp(sims[i] / temperature)
        predictions.append(int(np.argmax(votes)))
    return np.array(predictions)


@pytest.mark.parametrize("k, temperature", [(20, 0.07), (5, 0.5), (1, 0.07)])
def test_knn_matches_a_brute_force_reference(k, temperature):
    g = torch.Generator().manual_seed(k)
    centres = torch.randn(4, 8, generator=g)
    train_y, eval_y = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (60,), generator=g)
    train_x = centres[train_y] + 0.8 * torch.randn(200, 8, generator=g)
    eval_x = centres[eval_y] + 0.8 * torch.randn(60, 8, generator=g)
    ref = _knn_reference(train_x.double().numpy(), train_y.numpy(), eval_x.double().numpy(), k, temperature, 4)
    got = knn_predict(train_x, train_y, eval_x, k, temperature, num_classes=4, chunk=16)
    assert (got.numpy() == ref).mean() >= 59 / 60  # float32 vs float64 may flip a near-tie
    acc = knn_accuracy(train_x, train_y, eval_x, eval_y, k=k, temperature=temperature)
    assert acc == pytest.approx((ref == eval_y.numpy()).mean(), abs=1.5 / 60) and acc > 0.5


def test_knn_errors_name_the_problem():
    with pytest.raises(ValueError, match="same width, got 8 and 4"):
        knn_accuracy(torch.randn(5, 8), torch.zeros(5, dtype=torch.long), torch.randn(3, 4),
                     torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_accuracy(torch.randn(5, 8), torch.zeros(5, dtype=torch.long), torch.randn(3, 8),
                     torch.zeros(3, dtype=torch.long), k=0)


def test_knn_votes_are_weighted_by_exp_similarity_over_temperature():
    """Two very close neighbours of class 0 against three far ones of class 1 (k=5): with T=0.07 the
    close pair wins (2·e^(0.99/0.07) > 3·e^(0.5/0.07)); with T=5 the votes are nearly equal and the
    three win; an unweighted vote would always pick class 1."""
    query = torch.tensor([[1.0, 0.0]])
    angle = lambda cos: [cos, (1 - cos ** 2) ** 0.5]  # noqa: E731
    train_x = torch.tensor([angle(0.99), angle(0.99), angle(0.5), angle(0.5), angle(0.5), [-1.0, 0.0]])
    train_y = torch.tensor([0, 0, 1, 1, 1, 0])
    assert knn_predict(train_x, train_y, query, k=5, temperature=0.07).tolist() == [0]
    assert knn_predict(train_x, train_y, query, k=5, temperature=5.0).tolist() == [1]
    assert knn_accuracy(train_x, train_y, query, torch.tensor([0]), k=5) == 1.0


def test_knn_votes_are_shares_and_stay_finite_at_a_tiny_temperature():
    torch.manual_seed(0)
    train_x, train_y, eval_x = torch.randn(30, 8), torch.arange(30) % 3, torch.randn(7, 8)
    from vtrep.probes.knn import knn_votes

    for temperature in (0.07, 1e-3, 1e-5):
        votes = knn_votes(train_x, train_y, eval_x, k=5, temperature=temperature, num_classes=3)
        assert torch.isfinite(votes).all() and torch.allclose(votes.sum(dim=1), torch.ones(7))
    # at a vanishing temperature the vote is the nearest neighbour's class
    nearest = (F.normalize(eval_x, dim=1) @ F.normalize(train_x, dim=1).T).argmax(dim=1)
    assert knn_predict(train_x, train_y, eval_x, k=5, temperature=1e-5).tolist() == train_y[nearest].tolist()
