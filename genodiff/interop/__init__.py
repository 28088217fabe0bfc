"""genodiff.interop: import/export of published checkpoints (Hugging Face Caduceus layout, safetensors)."""

from genodiff.interop.hf_caduceus import (  # noqa: F401
    PUBLISHED_CHECKPOINTS,
    config_from_hf,
    config_to_hf,
    load_caduceus,
    load_hf_state_dict,
    load_pretrained,
    save_caduceus,
    to_hf_state_dict,
)

__all__ = [
    "PUBLISHED_CHECKPOINTS",
    "config_from_hf",
    "config_to_hf",
    "load_caduceus",
    "load_hf_state_dict",
    "load_pretrained",
    "save_caduceus",
    "to_hf_state_dict",
]
