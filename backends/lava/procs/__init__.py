"""snnc's own Lava processes and their models. Lava exec's every module in this folder when it
looks for ProcessModels, so it holds only import-safe modules (no scripts, no side effects)."""
