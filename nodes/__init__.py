"""ComfyUI node classes of the MemVOS pack (thin V1 classes over memvos_core)."""
