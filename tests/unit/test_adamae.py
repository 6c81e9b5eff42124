"""AdaMAE token sampler and sampling loss."""

import pytest
import torch

from vtrep.backbones import VideoViT
from vtrep.decoders.mae_decoder import MAEDecoderConfig
from vtrep.masking import AdaMAESampler
from vtrep.masking.adamae import complement_ids, sampling_loss
from vtrep.tasks import VideoMAETask

GRID = (2, 4, 4)  # N = 32
DIM = 16


def make_sampler(**kwargs) -> AdaMAESampler:
    kwargs = {"mask_ratio": 0.75, "num_heads": 2, "dropout": 0.0, "embed_dim": DIM, "grid": GRID} | kwargs
    return AdaMAESampler(**kwargs)


def test_probabilities_sum_to_one_and_visible_count_is_exact():
    sampler = make_sampler()
    tokens = torch.randn(5, 32, DIM)
    out = sampler(5, GRID, tokens=tokens)
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(5))
    assert out.ids_keep.shape == (5, int(32 * 0.25)) and out.ids_mask.shape == (5, 24)
    assert out.mask.sum(dim=1).tolist() == [24] * 5


def test_no_token_is_sampled_twice_and_the_split_covers_every_token():
    sampler = make_sampler(mask_ratio=0.5)
    for _ in range(20):
        out = sampler(8, GRID, tokens=torch.randn(8, 32, DIM))
        for keep, masked in zip(out.ids_keep.tolist(), out.ids_mask.tolist()):
            assert len(set(keep)) == len(keep)
            assert sorted(keep + masked) == list(range(32))
            assert keep == sorted(keep) and masked == sorted(masked)


def test_sampling_follows_the_probabilities():
    sampler = make_sampler(mask_ratio=0.875)  # 4 visible of 32
    with torch.no_grad():
        sampler.score.bias.zero_()
        sampler.score.weight.zero_()
        sampler.pos_embed.zero_()
        sampler.pos_embed[0, :4, 0] = 1.0  # only tokens 0..3 get a large logit
        sampler.score.weight[0, 0] = 40.0
    sampler.block = torch.nn.Identity()
    out = sampler(16, GRID, tokens=torch.zeros(16, 32, DIM))
    assert (out.ids_keep == torch.arange(4)).all()


def test_complement_ids():
    keep = torch.tensor([[3, 0], [1, 2]])
    assert complement_ids(keep, 4).tolist() == [[1, 2], [0, 3]]


def test_sampling_loss_matches_hand_computation():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    ids = torch.tensor([[1, 3]])
    error = torch.tensor([[2.0, 0.5]])
    expected = -(torch.log(torch.tensor(0.2)) * 2.0 + torch.log(torch.tensor(0.4)) * 0.5) / 2
    torch.testing.assert_close(sampling_loss(probs.log(), ids, error, None), expected)
    valid = torch.tensor([[True, False]])
    torch.testing.assert_close(sampling_loss(probs.log(), ids, error, valid), -torch.log(torch.tensor(0.2)) * 2.0)


def tiny_task(sampling_weight: float) -> VideoMAETask:
    backbone = VideoViT(img_size=16, num_frames=4, patch_size=4, tubelet_size=2, embed_dim=DIM, depth=1, num_heads=2)
    sampler = AdaMAESampler(0.75, sampling_weight=sampling_weight, num_heads=2)
    return VideoMAETask(backbone, sampler, MAEDecoderConfig(16, 1, 2), batch_size_for_lr=2)


@pytest.mark.parametrize("weight", [0.0, 1e-4])
def test_sampler_learns_only_through_the_sampling_loss(weight):
    torch.manual_seed(0)
    task = tiny_task(weight)
    _, mask, rec = task(torch.randn(2, 3, 4, 16, 16))
    loss, aux = task.loss_parts(mask, rec)
    loss.backward()
    grads = [p.grad for p in task.masking.parameters()]
    if weight == 0:
        assert aux is None and all(g is None for g in grads)
    else:
        assert aux is not None and aux.item() > 0
        assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_sampling_loss_raises_probability_of_high_error_tokens():
    """One SGD step on a constructed case: tokens with larger detached error gain probability."""
    torch.manual_seed(0)
    sampler = make_sampler(mask_ratio=0.5)
    tokens = torch.randn(4, 32, DIM)
    ids_mask = torch.arange(32).expand(4, 32)  # score every token
    error = torch.full((4, 32), 0.1)
    hard = torch.tensor([2, 7, 11, 20, 29])
    error[:, hard] = 2.0
    before = sampler.token_probs(tokens).detach()
    loss = sampling_loss(torch.log(sampler.token_probs(tokens)), ids_mask, error, None)
    loss.backward()
    with torch.no_grad():
        for p in sampler.parameters():
            p -= 0.5 * p.grad
    after = sampler.token_probs(tokens).detach()
    easy = torch.ones(32, dtype=torch.bool)
    easy[hard] = False
    assert (after[:, hard].sum(1) > before[:, hard].sum(1)).all()
    assert (after[:, easy].sum(1) < before[:, easy].sum(1)).all()


def test_bad_configurations_fail_with_named_parameters():
    with pytest.raises(ValueError, match="num_heads"):
        AdaMAESampler(0.95, num_heads=3, embed_dim=16, grid=GRID)
    with pytest.raises(ValueError, match="mask_ratio"):
        AdaMAESampler(0.99, num_heads=2, embed_dim=16, grid=GRID)
    with pytest.raises(ValueError, match="tokens"):
        make_sampler()(2, GRID)
    with pytest.raises(RuntimeError, match="bind"):
        AdaMAESampler(0.9, num_heads=2).token_probs(torch.randn(1, 32, DIM))


def test_narrow_checkpointed_sampler_matches_plain_one():
    torch.manual_seed(0)
    plain = make_sampler(sampler_dim=8)
    checkpointed = make_sampler(sampler_dim=8, checkpoint_sampler=True)
    checkpointed.load_state_dict(plain.state_dict())
    tokens = torch.randn(3, 32, DIM)
    grads = []
    for sampler in (plain, checkpointed):
        probs = sampler.token_probs(tokens)
        (probs[:, :5].sum()).backward()
        grads.append([p.grad.clone() for p in sampler.parameters()])
        torch.testing.assert_close(probs, plain.token_probs(tokens))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert plain.project.weight.shape == (8, DIM)


def test_zero_weight_builds_no_graph():
    out = make_sampler(sampling_weight=0.0)(2, GRID, tokens=torch.randn(2, 32, DIM, requires_grad=True))
    assert out.error_loss is None and not out.probs.requires_grad
