// Stand-in for ComfyUI's `scripts/api.js`: the real `api.apiURL(route)` prefixes "/api".
export const api = {
  api_base: "",
  apiURL(route) {
    return `${this.api_base}/api${route}`;
  },
};
