"""Why a video could not give a clip: the errors the decoders and clip sampling raise and the skip rules read."""

from __future__ import annotations


class SelectionError(ValueError):
    """Raised by a :data:`FrameSelector` that rejects a video (e.g. too short for a clip).

    :func:`read_clip` passes it on as is instead of trying another decoder: the video was read, it
    just cannot give what was asked.
    """


class VideoDecodeError(RuntimeError):
    """No backend could decode ``path``; ``reasons`` maps each backend tried to its error."""

    def __init__(self, path: str, reasons: dict[str, str]) -> None:
        self.path, self.reasons = str(path), dict(reasons)
        detail = "; ".join(f"{name}: {reason}" for name, reason in self.reasons.items())
        super().__init__(f"could not decode video {self.path!r} ({detail})")


class TooShortError(SelectionError):
    """The video has fewer frames than one clip spans (raised with ``short="skip"``)."""
