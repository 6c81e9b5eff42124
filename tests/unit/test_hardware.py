"""The warning for bf16 autocast on a CPU that emulates bf16."""

import pytest

from vtrep import hardware


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_cpu_warns_only_without_native_bf16(monkeypatch, native):
    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: native)
    message = hardware.slow_bf16_message("bf16-mixed", "cpu")
    if native:
        assert message is None
    else:
        assert message.startswith("trainer.precision='bf16-mixed' on a CPU without native bf16")
        assert message.endswith("Use trainer.precision=32 (configs/trainer/cpu.yaml) on this machine.")


def test_no_warning_for_fp32_or_other_accelerators(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: False)
    assert hardware.slow_bf16_message("32-true", "cpu") is None
    assert hardware.slow_bf16_message("bf16-mixed", "other") is None


def test_trainer_check_reads_precision_and_accelerator(monkeypatch):
    import lightning as L

    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: False)
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False)
    with pytest.warns(UserWarning, match="bf16 matmuls are emulated"):
        assert hardware.warn_if_slow_bf16(trainer) is not None
