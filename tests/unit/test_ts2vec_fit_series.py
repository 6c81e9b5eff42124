"""TS2Vec's rules for any UCR set: long series cut into pieces, NaN padding centred, budget, SVM subsample, batches."""

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import SeriesClassificationDataModule
from datamodules.series.fit_series import centre_series, split_long_series, ts2vec_fit_series
from vtrep.backbones import DilatedConvEncoder
from vtrep.benchmark.ucr import ts2vec_budget
from vtrep.eval import series_classification, series_features
from vtrep.tasks import TS2VecTask

NAN = np.nan


def write_set(root: Path, name: str, train: list[str], test: list[str]) -> None:
    (root / name).mkdir(parents=True)
    (root / name / f"{name}_TRAIN.tsv").write_text("\n".join(train) + "\n")
    (root / name / f"{name}_TEST.tsv").write_text("\n".join(test) + "\n")


def row(label, values) -> str:
    return "\t".join([str(label), *("NaN" if np.isnan(v) else f"{v:g}" for v in values)])


def test_long_series_are_cut_into_nan_padded_pieces_piece_major():
    x = np.arange(2 * 7, dtype=np.float32).reshape(2, 1, 7)
    pieces, labels = split_long_series(x, np.array([4, 9]), max_length=3)  # 7 // 3 = 2 pieces: widths 4 and 3
    assert pieces.shape == (4, 1, 4) and labels.tolist() == [4, 9, 4, 9]
    assert pieces[0, 0].tolist() == [0, 1, 2, 3] and pieces[1, 0].tolist() == [7, 8, 9, 10]
    assert pieces[2, 0, :3].tolist() == [4, 5, 6] and np.isnan(pieces[2, 0, 3])
    same, _ = split_long_series(x, np.array([4, 9]), max_length=4)  # 7 // 4 = 1: kept whole (the task crops it)
    assert same is x


def test_padding_is_centred_and_only_all_nan_steps_count():
    x = np.array([[[1, 2, NAN, NAN, NAN, NAN]], [[NAN, 3, 4, 5, 6, 7]], [[1, 2, 3, 4, 5, 6]]], dtype=np.float32)
    out = centre_series(x)
    assert np.array_equal(out[0, 0], [NAN, NAN, 1, 2, NAN, NAN], equal_nan=True)  # 4 trailing → 2 and 2
    assert np.array_equal(out[1, 0], [3, 4, 5, 6, 7, NAN], equal_nan=True)  # (1 + 0) // 2 − 1 = −1: one step left
    assert np.array_equal(out[2], x[2])  # nothing to balance
    both = np.array([[[1, 2, NAN, NAN], [1, NAN, NAN, NAN]]], dtype=np.float32)  # step 1 observed in channel 0
    assert np.array_equal(centre_series(both)[0, 0], [NAN, 1, 2, NAN], equal_nan=True)


def test_pieces_cut_from_padding_are_dropped():
    x = np.full((2, 1, 9), NAN, dtype=np.float32)
    x[0, 0, :2] = [1, 2]
    x[1, 0] = np.arange(9)
    pieces, labels = ts2vec_fit_series(x, np.array([0, 1]), max_train_length=3)
    assert pieces.shape == (4, 1, 3) and labels.tolist() == [0, 1, 1, 1]  # series 0's 2nd and 3rd pieces: all NaN
    assert np.array_equal(pieces[0, 0], [1, 2, NAN], equal_nan=True)  # one trailing NaN: (0 + 1) // 2 − 0 = 0
    with pytest.raises(ValueError, match="NaN everywhere"):
        ts2vec_fit_series(np.full((1, 1, 4), NAN, dtype=np.float32), np.array([0]))


def test_datamodule_trains_on_pieces_and_keeps_whole_series_for_the_probe(tmp_path):
    long = [row(-3 + 2 * (i % 2), [float(v) for v in range(11 + i)] + [NAN] * (3 - i)) for i in range(4)]
    write_set(tmp_path, "Long", long, long)
    data = SeriesClassificationDataModule(root=str(tmp_path), name="Long", batch_size=4, drop_last=True,
                                          split_train_length=4, centre_variable_length=True)
    data.setup("fit")
    assert tuple(data.train_set.tensors[0].shape) == (4, 1, 14) and data.classes == ["-3", "-1"]
    assert tuple(data.fit_set.tensors[0].shape) == (12, 1, 5)  # 14 // 4 = 3 pieces of width 5 each
    batch = next(iter(data.train_dataloader()))[0]
    assert batch.shape == (4, 1, 5)
    plain = SeriesClassificationDataModule(root=str(tmp_path), name="Long")
    plain.setup("fit")
    assert plain.fit_set is plain.train_set
    with pytest.raises(ValueError, match="split_train_length must be >= 1"):
        SeriesClassificationDataModule(root=str(tmp_path), name="Long", split_train_length=0)


def test_nan_padding_never_reaches_the_loss():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 40)
    x[0, :, 10:] = torch.nan  # a short series: most crops see mainly padding
    x[1, :, :30] = torch.nan  # centred-style leading padding
    task = TS2VecTask(DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=2), max_train_length=16)
    for _ in range(5):  # random crops, some entirely inside the padding of series 0
        loss = task.loss(x)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in task.encoder.parameters())
    representations = series_features.series_representations(task.representation_encoder, x, revin=False)
    assert torch.isfinite(representations).all()


def test_budget_counts_the_training_file_before_cutting(tmp_path):
    # 50 series × 2 000 steps = 100 000 values: 200 iterations, though the test file is wider
    write_set(tmp_path, "Edge", [row(i % 2, [0.5] * 2000) for i in range(50)],
              [row(i % 2, [0.5] * 3000) for i in range(4)])
    assert ts2vec_budget(str(tmp_path), "Edge") == ["--trainer.max_steps", "200", "--trainer.max_epochs", "-1",
                                                    "--data.init_args.batch_size", "8"]
    write_set(tmp_path, "Over", [row(i % 2, [0.5] * 2001) for i in range(50)], [row(0, [0.5] * 2001)])
    assert ts2vec_budget(str(tmp_path), "Over")[:2] == ["--trainer.max_steps", "600"]
    write_set(tmp_path, "Few", [row(i % 2, [0.5, NAN]) for i in range(5)], [row(0, [0.5, 1.0])])
    assert ts2vec_budget(str(tmp_path), "Few")[-1] == "5"  # min(8, n)


def test_svm_search_above_max_samples_uses_ts2vecs_stratified_subsample(monkeypatch):
    from sklearn.model_selection import GridSearchCV, train_test_split

    seen = []
    original = GridSearchCV.fit
    monkeypatch.setattr(GridSearchCV, "fit", lambda self, x, y: seen.append(x) or original(self, x, y))
    monkeypatch.setattr(series_classification, "MAX_SEARCH_SAMPLES", 60)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [50, 30, 20])
    features = rng.normal(size=(100, 4)) + labels[:, None] * 3
    for seed in (0, 7):  # the run's seed does not move TS2Vec's subsample
        series_classification.evaluate_representations(features, labels, features, labels, "svm", seed)
    expected = train_test_split(features, labels, train_size=60, random_state=0, stratify=labels)[0]
    assert len(seen) == 2 and all(np.array_equal(x, expected) for x in seen)


def test_step_encoders_are_fed_bounded_batches(monkeypatch):
    encoder = DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=1)
    x = torch.randn(10, 1, 30)
    whole = series_features.series_representations(encoder, x)
    shapes = []
    encoder.register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape)))
    monkeypatch.setattr(series_features, "MAX_BATCH_STEPS", 100)  # 100 // 30 = 3 series a batch
    bounded = series_features.series_representations(encoder, x)
    assert [s[0] for s in shapes] == [3, 3, 3, 1] and torch.allclose(bounded, whole, atol=1e-6)
    monkeypatch.setattr(series_features, "MAX_BATCH_STEPS", 10)  # shorter than one series: one at a time
    shapes.clear()
    series_features.series_representations(encoder, x[:2])
    assert [s[0] for s in shapes] == [1, 1]
