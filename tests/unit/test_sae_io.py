"""SAE artefacts: vtrep save/load round trip with the input scale folded in; SAELens export/import."""

import pytest
import torch

from vtrep.sae import (
    AbsTopKSAE,
    ATMSAE,
    BatchTopKSAE,
    JumpReLUSAE,
    MatryoshkaSAE,
    ReLUL1SAE,
    TopKSAE,
)
from vtrep.sae.io import export_saelens, import_saelens, load_sae, save_sae

BUILDERS = {
    "topk": lambda: TopKSAE(8, 32, k=4),
    "batchtopk": lambda: BatchTopKSAE(8, 32, k=4),
    "matryoshka": lambda: MatryoshkaSAE(8, 32, k=4),
    "jumprelu": lambda: JumpReLUSAE(8, 32, threshold_init=0.05),
    "relu_l1": lambda: ReLUL1SAE(8, 32),
    "abstopk": lambda: AbsTopKSAE(8, 32, k=4),
    "atm": lambda: ATMSAE(8, 32, k=4, warmup_steps=1),
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


@pytest.mark.parametrize("name", ["topk", "batchtopk", "matryoshka", "jumprelu", "relu_l1", "atm"])
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


def test_import_folds_saelens_decoder_norm_rescaling(tmp_path):
    """A SAELens TopK saved with rescale_acts_by_decoder_norm (its training default) imports with equal
    codes and outputs: pre-activations scaled by ‖W_dec[i]‖ before TopK, codes divided by it to decode."""
    import json

    from safetensors.torch import save_file

    torch.manual_seed(0)
    d, latents, k = 8, 32, 4
    weights = {"W_enc": torch.randn(d, latents), "b_enc": torch.randn(latents) * 0.1,
               "W_dec": torch.randn(latents, d) * (torch.rand(latents, 1) * 2 + 0.2), "b_dec": torch.randn(d)}
    save_file(weights, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps({
        "d_in": d, "d_sae": latents, "architecture": "topk", "k": k, "rescale_acts_by_decoder_norm": True,
        "apply_b_dec_to_input": True, "normalize_activations": "none", "dtype": "float32", "device": "cpu"}))
    x = torch.randn(64, d) * 3
    norm = weights["W_dec"].norm(dim=1)
    pre = ((x - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]) * norm
    values, indices = pre.topk(k, dim=-1)
    codes = torch.zeros_like(pre).scatter_(-1, indices, values.relu())
    expected = (codes / norm) @ weights["W_dec"] + weights["b_dec"]
    loaded = import_saelens(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), codes, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(loaded(x), expected, atol=1e-4, rtol=1e-4)


# -- against the real SAELens (optional: skipped when sae-lens is not installed) --------------------------
def _sae_lens():
    return pytest.importorskip("sae_lens", reason="sae-lens is not installed")


@pytest.mark.parametrize(("name", "architecture"), [("topk", "topk"), ("matryoshka", "topk"), ("atm", "topk"),
                                                     ("batchtopk", "jumprelu"), ("jumprelu", "jumprelu"),
                                                     ("relu_l1", "standard")])
def test_export_loads_in_saelens_with_equal_outputs(name, architecture, tmp_path):
    sae_lens = _sae_lens()
    sae, x = trained(name)
    theirs = sae_lens.SAE.load_from_disk(str(export_saelens(sae, tmp_path / "saelens")), device="cpu")
    assert theirs.cfg.architecture() == architecture
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-5, rtol=1e-5)


def _saelens_sae(sae_lens, kind: str, d: int = 8, latents: int = 32):
    """A SAELens SAE of ``kind`` with weights moved off their initialisation and decoder rows of varied norm."""
    configs = {
        "topk_training": lambda: sae_lens.TopKTrainingSAE(sae_lens.TopKTrainingSAEConfig(d_in=d, d_sae=latents, k=4)),
        "topk_rescaled": lambda: sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=d, d_sae=latents, k=4,
                                                                         rescale_acts_by_decoder_norm=True)),
        "topk": lambda: sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=d, d_sae=latents, k=4)),
        "jumprelu": lambda: sae_lens.JumpReLUSAE(sae_lens.JumpReLUSAEConfig(d_in=d, d_sae=latents)),
        "standard": lambda: sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=d, d_sae=latents)),
    }
    torch.manual_seed(0)
    sae = configs[kind]()
    with torch.no_grad():
        for parameter in sae.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
        sae.W_dec.mul_(torch.rand(latents, 1) * 2 + 0.2)
        if kind == "jumprelu":
            sae.threshold.copy_(torch.rand(latents))
    return sae


@pytest.mark.parametrize("kind", ["topk_training", "topk_training_inference", "topk_rescaled", "topk", "jumprelu",
                                  "standard"])
def test_saelens_saved_sae_imports_with_equal_outputs(kind, tmp_path):
    """SAELens's own files (``save_model``; ``save_inference_model`` for the training SAE's inference
    export) import with the codes and outputs SAELens computes from them."""
    sae_lens = _sae_lens()
    sae = _saelens_sae(sae_lens, kind.removesuffix("_inference"))
    if kind.endswith("_inference"):
        sae.save_inference_model(tmp_path)
    else:
        sae.save_model(tmp_path)
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path), device="cpu")
    ours = import_saelens(tmp_path)
    x = torch.randn(64, 8) * 4 + 1
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), theirs.encode(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-4, rtol=1e-4)
