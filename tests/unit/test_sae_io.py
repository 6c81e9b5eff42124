"""SAE artefacts: vtrep save/load round trip with the input scale folded in; SAELens export/import."""

import pytest
import torch

from vtrep.sae import AbsTopKSAE, BatchTopKSAE, JumpReLUSAE, MatryoshkaSAE, ReLUL1SAE, TopKSAE
from vtrep.sae.io import export_saelens, import_saelens, load_sae, save_sae

BUILDERS = {
    "topk": lambda: TopKSAE(8, 32, k=4),
    "batchtopk": lambda: BatchTopKSAE(8, 32, k=4),
    "matryoshka": lambda: MatryoshkaSAE(8, 32, k=4),
    "jumprelu": lambda: JumpReLUSAE(8, 32, threshold_init=0.05),
    "relu_l1": lambda: ReLUL1SAE(8, 32),
    "abstopk": lambda: AbsTopKSAE(8, 32, k=4),
}


def trained(name: str):
    torch.manual_seed(0)
    sae = BUILDERS[name]()
    x = torch.randn(256, 8) * 4 + 1
    sae.fit_input_scale(x)
    sae.init_decoder_bias(x)
    sae.train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2)
    for _ in range(5):  # moves the weights off their initialisation (and sets BatchTopK's threshold)
        out = sae.loss(x)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return sae.eval(), torch.randn(64, 8) * 4 + 1


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_save_load_round_trip_takes_raw_features(name, tmp_path):
    sae, x = trained(name)
    scale = float(sae.input_scale)
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert type(loaded) is type(sae) and float(loaded.input_scale) == 1.0
    assert float(sae.input_scale) == scale  # the model given is not modified
    torch.testing.assert_close(loaded(x), sae(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["topk", "batchtopk", "matryoshka", "jumprelu", "relu_l1"])
def test_saelens_export_imports_back_with_equal_outputs(name, tmp_path):
    sae, x = trained(name)
    folder = export_saelens(sae, tmp_path / "saelens")
    assert (folder / "cfg.json").is_file() and (folder / "sae_weights.safetensors").is_file()
    loaded = import_saelens(folder)
    torch.testing.assert_close(loaded(x), sae(x), atol=1e-5, rtol=1e-5)


def test_abstopk_is_refused_by_the_saelens_export(tmp_path):
    sae, _ = trained("abstopk")
    with pytest.raises(ValueError, match="signed codes"):
        export_saelens(sae, tmp_path / "saelens")


def test_importing_a_folder_without_saelens_files_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json not found"):
        import_saelens(tmp_path)


@pytest.mark.parametrize("name", ["topk", "jumprelu", "relu_l1"])
def test_export_loads_in_saelens_with_equal_outputs(name, tmp_path):
    sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is not installed")
    sae, x = trained(name)
    theirs = sae_lens.SAE.load_from_disk(str(export_saelens(sae, tmp_path / "saelens")), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-5, rtol=1e-5)
