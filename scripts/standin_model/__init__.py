"""standin's model in plain PyTorch: architecture, checkpoint import, TorchScript bundle export."""
from .config import ModelConfig, get_config  # noqa: F401
