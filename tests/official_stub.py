"""A stand-in for an official XMem checkout (the real one never enters this project): the
modules and calls the benchmarks import from ``--official PATH``, answered by our own engine,
so that the benchmark's official path can be run in tests."""
import textwrap

FILES = {
    "model/__init__.py": "",
    "model/resnet.py": """
        model_zoo = None

        def load_weights_add_extra_dim(target, source_state, extra_dim=1):
            pass
    """,
    "model/network.py": """
        from memvos_core.network.xmem import XMemNetwork


        class XMem(XMemNetwork):
            def __init__(self, config, model_path=None, map_location=None):
                super().__init__()
                config.update(key_dim=64, value_dim=512, hidden_dim=64)

            def load_weights(self, src_dict, init_as_zero_if_needed=False):
                self.load_state_dict(src_dict)
    """,
    "inference/__init__.py": "",
    "inference/inference_core.py": """
        from memvos_core import InferenceEngine, MemoryConfig
        from memvos_core.runtime.perf import EngineOptions

        NAMES = ("top_k", "mem_every", "deep_update_every", "enable_long_term", "enable_long_term_count_usage",
                 "min_mid_term_frames", "max_mid_term_frames", "num_prototypes", "max_long_term_elements")


        class InferenceCore:
            def __init__(self, network, config):
                memory = MemoryConfig(memory_mode="xmem", **{k: config[k] for k in NAMES})
                device = next(network.parameters()).device
                self.engine = InferenceEngine(network, memory, device, options=EngineOptions.plain())

            def set_all_labels(self, all_labels):
                self.engine.set_num_objects(len(all_labels))

            def step(self, image, mask=None, valid_labels=None, end=False):
                return self.engine.step(image, mask, valid_labels, end)
    """,
}


def make_official_checkout(root):
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root
