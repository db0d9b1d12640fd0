"""Every node of the pack, by id, with its display name (what ComfyUI registers)."""
from . import (click_masks, comfy_env, composite_node, example_media, frames_nodes, keyframes_node, linked_outputs,
               mask_nodes, mask_output_nodes, matte_nodes, model_nodes, number_inputs, propagate_node, routes,
               session_files, session_nodes, suggest_node)

_MODULES = (model_nodes, session_nodes, keyframes_node, frames_nodes, propagate_node, mask_nodes, mask_output_nodes,
            composite_node, suggest_node, session_files, matte_nodes)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

number_inputs.install(NODE_CLASS_MAPPINGS.values())  # linked INT/FLOAT values: in range and finite
example_media.install()
linked_outputs.install(NODE_CLASS_MAPPINGS)
comfy_env.add_get_routes(routes.ROUTES)  # the keyframe editor reads frames and masks
comfy_env.add_get_routes(click_masks.ROUTES)  # and turns clicks into masks
